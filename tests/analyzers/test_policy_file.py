"""The fix policy file: a good file read into its models, the shipped default equal to the
models' defaults (and its commented examples valid), every problem of a bad file told at once
as FILE:LINE: field: message, and what a valid file may still have wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mendline.analyzers.policy import (
    SHIPPED_POLICY,
    load_policy,
    parse_policy,
    policy_warnings,
    shipped_policy_text,
)
from mendline.schemas.errors import ConfigError
from mendline.schemas.fixpolicy import (
    CodeMapping,
    FixPolicy,
    HttpAction,
    RemediationWhen,
)

GOOD = """\
[auto]
severities = ["low"]
max_per_hour = 1

[approval.two_person]
kinds = ["logic"]

[deny]
paths = ["**/migrations/**"]

[[repositories]]
name = "shop"
path = "/srv/shop"
delivery = "pull_request"
forge = "gitlab"
project = "acme/backend/shop"
token_env = "SHOP_GITLAB_TOKEN"
verify = [["pytest", "-q"]]
verify_timeout = "5m"

[[repositories.mappings]]
stack_root = "app."
source_root = "src/app/"

[[repositories.mappings]]
stack_root = ""

[[remediations]]
name = "flush"
when = { labels = { service = "orders", "tag:team" = ["a", "b"] }, category = "configuration" }
http = { url = "https://cache.internal/flush", headers_env = { Authorization = "FLUSH_TOKEN" } }
verify = false
dry_run = true
"""


def test_a_good_file_is_read_into_its_models() -> None:
    policy = parse_policy(GOOD, "fixes.toml")
    assert policy.auto.severities == ["low"] and policy.auto.kinds == [
        "style",
        "formatting",
        "import",
    ]
    assert policy.auto.max_per_hour == 1
    assert policy.approval.two_person.kinds == ["logic"]
    assert policy.approval.two_person.severities == ["critical"]  # the default, kept
    assert policy.deny.paths == ["**/migrations/**"]  # a list given replaces the default
    (shop,) = policy.repositories
    assert (shop.name, shop.path, shop.base_branch, shop.delivery) == (
        "shop",
        Path("/srv/shop"),
        "main",
        "pull_request",
    )
    assert shop.forge_api_url == "https://gitlab.com/api/v4"
    assert shop.verify == [["pytest", "-q"]] and shop.test is None
    assert shop.verify_timeout == 300.0 and shop.output_limit == 20_000
    assert shop.mappings == [
        CodeMapping(stack_root="app.", source_root="src/app/"),
        CodeMapping(stack_root="", source_root=""),
    ]
    assert shop.mappings[0].path_prefix == "app/"
    assert policy.repository("shop") is shop and policy.repository("nope") is None
    (flush,) = policy.remediations
    assert flush.when == RemediationWhen(
        labels={"service": ["orders"], "tag:team": ["a", "b"]}, category="configuration"
    )
    assert flush.http == HttpAction(
        url="https://cache.internal/flush", headers_env={"Authorization": "FLUSH_TOKEN"}
    )
    assert flush.command is None and flush.dry_run and flush.requires_approval
    assert (flush.cooldown, flush.max_runs_per_hour, flush.timeout) == (600.0, 3, 60.0)
    assert flush.run_target == "flush"


def test_the_shipped_default_is_the_models_defaults_and_names_no_repository() -> None:
    assert load_policy(None) == FixPolicy()
    assert FixPolicy().repositories == []
    assert parse_policy("", "empty.toml") == FixPolicy()


def test_the_shipped_defaults_commented_examples_are_valid() -> None:
    text = shipped_policy_text()
    examples = text[text.index("# [[repositories]]") :].splitlines()
    uncommented = "\n".join(
        line.removeprefix("# ") for line in examples if not line.startswith(("# --", "# #"))
    )
    policy = parse_policy(uncommented, "uncommented")
    assert [repo.name for repo in policy.repositories] == ["shop"]
    assert [remedy.name for remedy in policy.remediations] == ["restart-worker", "flush-cache"]
    assert policy.repositories[0].delivery == "pull_request"


BAD = """\
[auto]
severities = ["low", "urgent"]
min_confidence = 1.5
max_per_hour = "3"
colour = "blue"

[approval]
two_person = { kind = ["logic"] }

[deny]
paths = ["/etc/**", "../up"]
patterns = ["(unclosed"]
risks = ["shel_command"]

[[repositories]]
name = "shop"
path = "srv/shop"
token_env = "ghp_s3cr3tvalue-123"
verify = [["pytest"], []]
test = "pytest -q"
verify_timeout = "forever"
remote = "https://bot:s3cr3t@github.com/acme/shop.git"

[[repositories.mappings]]
stack_root = "app"
source_root = "src/app/"

[[repositories]]
name = "shop"
path = "/srv/other"
mappings = []

[[remediations]]
name = "restart"
when = { labels = { team = "x" } }
command = "systemctl restart worker"

[[remediations]]
name = "flush"
when = {}
http = { url = "ftp://cache.internal/flush" }
"""


def test_every_problem_of_a_bad_file_is_told_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(BAD, "fixes.toml")
    assert str(caught.value).splitlines() == [
        'fixes.toml:2: auto.severities[1]: "urgent" is not allowed'
        " (use low, medium, high or critical)",
        "fixes.toml:3: auto.min_confidence: must be at most 1, not 1.5",
        "fixes.toml:4: auto.max_per_hour: must be a whole number, not a string",
        "fixes.toml:5: auto.colour: unknown key (allowed: enabled, severities, kinds,"
        " min_confidence, paths, max_changed_lines, max_per_hour)",
        'fixes.toml:8: approval.two_person.kind: unknown key; did you mean "kinds"?'
        " (allowed: severities, kinds, categories)",
        "fixes.toml:11: deny.paths[0]: '/etc/**': paths are relative to the repository,"
        " with / between folders",
        "fixes.toml:11: deny.paths[1]: '../up': a path never goes up (..) in a repository",
        "fixes.toml:12: deny.patterns[0]: '(unclosed' is not a regular expression:"
        " missing ), unterminated subpattern at position 0",
        'fixes.toml:13: deny.risks[0]: "shel_command" is not allowed; did you mean'
        ' "shell_command"? (use pipe_to_shell, destructive_command, shell_command,'
        " code_execution, unsafe_deserialization, world_writable, fetches_url,"
        " dependency_change or severity_capped)",
        "fixes.toml:17: repositories[0].path: 'srv/shop' is not an absolute path (the local clone)",
        "fixes.toml:18: repositories[0].token_env: is not an environment variable name"
        " (letters, digits and _): secrets come from environment variables, so put the"
        " value in one and name it here",
        "fixes.toml:19: repositories[0].verify[1]: must name a program: an empty list runs nothing",
        "fixes.toml:20: repositories[0].test: must be a list of strings (the program and its"
        ' arguments, e.g. ["pytest", "-q"]), never a shell command line',
        'fixes.toml:21: repositories[0].verify_timeout: "forever" is not a duration'
        " (use 30s, 5m, 4h, 1h30m or seconds)",
        "fixes.toml:22: repositories[0].remote: holds credentials: secrets come from"
        " environment variables (the forge's token_env); remove them from the URL",
        "fixes.toml:25: repositories[0].mappings[0].stack_root: 'app': end it with / for a"
        ' path prefix ("app/") or . for a module prefix ("app."), or leave it empty ("")'
        " to map every path",
        'fixes.toml:29: repositories[1].name: "shop" is already the name of the repository'
        " on line 15: names are unique in the file",
        "fixes.toml:31: repositories[1].mappings: needs at least one"
        " [[repositories.mappings]] (stack_root, source_root)",
        "fixes.toml:35: remediations[0].when.labels.team: unknown label (use severity,"
        ' service, environment, kind, or "tag:<name>" for a tag, quoted: "tag:team" ='
        ' "payments")',
        "fixes.toml:36: remediations[0].command: must be a list of strings (the program and"
        ' its arguments, e.g. ["pytest", "-q"]), never a shell command line',
        "fixes.toml:40: remediations[1].when: give check, labels or category: a remediation"
        " for everything is none",
        "fixes.toml:41: remediations[1].http.url: 'ftp://cache.internal/flush' is not an"
        " http:// or https:// URL",
    ]
    assert "s3cr3t" not in str(caught.value)  # a pasted token or password is never echoed


REPOSITORY = '[[repositories]]\nname = "shop"\npath = "/srv/shop"\n'
MAPPING = '[[repositories.mappings]]\nstack_root = "app/"\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            REPOSITORY + 'delivery = "pull_request"\n' + MAPPING,
            'fixes.toml:1: repositories[0]: delivery = "pull_request" needs forge'
            ' ("github" or "gitlab"), project and token_env',
        ),
        (
            REPOSITORY + 'forge = "github"\n' + MAPPING,
            'fixes.toml:1: repositories[0]: forge = "github" needs project and token_env',
        ),
        (
            REPOSITORY + 'forge = "github"\nproject = "shop"\ntoken_env = "T"\n' + MAPPING,
            "fixes.toml:5: repositories[0].project: 'shop' is not a project: write \"owner/name\"",
        ),
        (
            REPOSITORY + 'base_branch = "--upload-pack=x"\n' + MAPPING,
            "fixes.toml:4: repositories[0].base_branch: '--upload-pack=x' is not a branch name",
        ),
        (
            REPOSITORY + 'remote = "-oProxyCommand=x"\n' + MAPPING,
            "fixes.toml:4: repositories[0].remote: '-oProxyCommand=x' is not a remote: give a"
            " remote's name (origin) or its URL (https://, ssh:// or git@host:path)",
        ),
        (
            REPOSITORY + 'delivery = "email"\n' + MAPPING,
            'fixes.toml:4: repositories[0].delivery: "email" is not allowed'
            " (use branch, push, pull_request or patch)",
        ),
        (
            REPOSITORY + MAPPING + 'source_root = "/abs/"\n',
            "fixes.toml:6: repositories[0].mappings[0].source_root: '/abs/': relative to the"
            " repository's root, with / between folders",
        ),
        (
            REPOSITORY + MAPPING + REPOSITORY.replace("shop", "api") + MAPPING,
            'fixes.toml:10: repositories[1].mappings[0].stack_root: "app/" is mapped already'
            " on line 5 (repository shop): a frame path would have two places",
        ),
        (
            REPOSITORY + 'mapping = []\n[[repositories.mappings]]\nstack_root = "app/"\n',
            'fixes.toml:4: repositories[0].mapping: unknown key; did you mean "mappings"?'
            " (allowed: name, path, base_branch, remote, delivery, forge, api_url, project,"
            " token_env, verify, test, verify_timeout, output_limit, mappings)",
        ),
        (
            '[[remediations]]\nname = "r"\nwhen = { check = "worker" }\ncommand = ["x"]\n'
            'http = { url = "https://x" }\n',
            "fixes.toml:1: remediations[0]: give exactly one of command (a list of strings) or"
            " [http]",
        ),
        (
            '[[remediations]]\nname = "r"\nwhen = { service = "x" }\ncommand = ["x"]\n',
            "fixes.toml:3: remediations[0].when.service: unknown key (allowed: check, labels,"
            " category)",
        ),
        (
            '[[remediations]]\nname = "r"\nwhen = { category = "configuration" }\n'
            'command = ["x"]\n',
            "fixes.toml:1: remediations[0]: verify = true runs when.check again after the run:"
            " set when.check, or say verify = false",
        ),
        (
            '[[remediations]]\nname = "r"\nwhen = { check = "w" }\ncommand = ["x"]\n'
            'http = { url = "https://u:pw@x/" }\n',
            "fixes.toml:5: remediations[0].http.url: holds credentials: secrets come from"
            " environment variables (headers_env); remove them from the URL",
        ),
        ("[auto\n", "fixes.toml:1: invalid TOML: Expected ']' at the end of a table declaration"),
        ("deny = 1\n", "fixes.toml:1: deny: must be a table, not a number"),
        ("[[deny]]\n", "fixes.toml:1: deny: must be a table, not a list"),
        ("[atuo]\n", 'fixes.toml:1: atuo: unknown key; did you mean "auto"?'),
    ],
)
def test_each_problem_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, "fixes.toml")
    assert str(caught.value).splitlines()[0].startswith(problem), str(caught.value)


def test_load_reads_a_file_and_names_one_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "fixes.toml"
    path.write_text(GOOD)
    assert load_policy(path) == parse_policy(GOOD, "x")
    with pytest.raises(ConfigError, match="cannot read the fix policy file"):
        load_policy(tmp_path / "missing.toml")
    assert SHIPPED_POLICY == "the shipped default"


def test_warnings_name_unset_variables_and_dropped_deny_defaults() -> None:
    policy = parse_policy(GOOD, "fixes.toml")
    warnings = policy_warnings(policy, {"FLUSH_TOKEN": ""})
    assert warnings[0].startswith(
        '[deny] paths leaves out 33 of the shipped default\'s: ".github/workflows/**",'
        ' ".github/actions/**", ".gitlab-ci.yml" and 30 more'
    )
    assert warnings[1:] == [
        'repository "shop": SHOP_GITLAB_TOKEN (token_env) is not set',
        'remediation "flush": FLUSH_TOKEN (http.headers_env.Authorization) is empty',
    ]
    assert policy_warnings(FixPolicy(), {}) == []
