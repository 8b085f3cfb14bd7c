"""Pure analysis: scrubbing, fingerprinting, and the root-cause analysers."""
