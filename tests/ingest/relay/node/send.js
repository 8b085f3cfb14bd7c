// Sends errors to a DSN with the real @sentry/node SDK, for the relay's tests.
// node send.js DSN SCENARIO [COUNT]; prints the captured event ids as a JSON array.
//   errors: the same chained error twice, then a message
//   many:   COUNT errors, each flushed before the next (rate limits, outages)
"use strict";
const Sentry = require("@sentry/node");

const [dsn, scenario, count] = process.argv.slice(2);

Sentry.init({
  dsn,
  release: "api@2.0.1",
  environment: "staging",
  defaultIntegrations: false,
  integrations: [Sentry.linkedErrorsIntegration(), Sentry.contextLinesIntegration()],
});

function loadOrder(order) {
  return order.items.length;
}

function handle() {
  try {
    loadOrder({});
  } catch (err) {
    throw new Error("order lookup failed", { cause: err });
  }
}

function captureFailure() {
  try {
    handle();
  } catch (err) {
    return Sentry.captureException(err);
  }
  return null;
}

async function main() {
  const ids = [];
  if (scenario === "errors") {
    ids.push(captureFailure());
    ids.push(captureFailure());
    ids.push(Sentry.captureMessage("payment provider slow", "warning"));
  } else if (scenario === "many") {
    for (let i = 0; i < Number(count); i++) {
      ids.push(captureFailure());
      await Sentry.flush(5000);
    }
  }
  await Sentry.close(5000); // flushes, and sends the client report of what it dropped
  process.stdout.write(JSON.stringify(ids));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack));
  process.exit(1);
});
