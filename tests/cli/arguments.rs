//! A command line that helps: what is missing is named, groups list their commands, values are
//! checked with their flag (and variable), errors are one plain line, and credentials are never
//! echoed.

use crate::helpers::{bare, command, key_id, output, Cli, KEY};
use mcp_events::{both_backends, Backend};

const GROUPS: &[(&str, &[&str])] = &[
    ("user", &["add", "disable", "list"]),
    ("org", &["add", "add-member", "remove-member", "list"]),
    ("integration", &["add", "set-status", "rotate", "list"]),
    ("token", &["create", "revoke", "list"]),
    ("lease", &["list", "revoke"]),
    ("audit", &["list"]),
    ("key", &["rotate"]),
];

#[test]
fn a_bare_group_lists_its_commands_and_exits_2() {
    for (group, commands) in GROUPS {
        let output = bare(&[group]);

        assert_eq!(output.code, 2, "{group}: {}", output.stderr);
        assert!(output.stdout.is_empty(), "{group}: {}", output.stdout);
        assert!(
            output.stderr.contains("Usage:"),
            "{group}: {}",
            output.stderr
        );
        for command in *commands {
            assert!(
                output.stderr.contains(&format!("\n  {command} ")),
                "{group} does not list {command}: {}",
                output.stderr
            );
        }
    }
    let top = bare(&[]);
    assert_eq!(top.code, 2);
    for group in ["serve", "seed", "replay", "verify", "user", "lease", "key"] {
        assert!(
            top.stderr.contains(&format!("\n  {group} ")),
            "{}",
            top.stderr
        );
    }
}

#[test]
fn help_shows_values_defaults_variables_and_settings_apart_but_never_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let mut command = command(dir.path(), args);
        command
            .env("DATABASE_URL", "postgres://ops:hunter2-db@db/ledger")
            .env("MCP_ENCRYPTION_KEY", KEY)
            .env("MCP_LEASE_DEFAULT_TTL", "1234");
        let output = output(command, None);
        assert_eq!(output.code, 0, "{}", output.stderr);
        output.stdout
    };

    let add = help(&["integration", "add", "--help"]);
    for expected in [
        "Global settings:",
        "[env: DATABASE_URL]",
        "[env: MCP_ENCRYPTION_KEY]",
        "[env: MCP_ENCRYPTION_KEY_OLD]",
        "[env: MCP_LEASE_DEFAULT_TTL]",
        "[possible values: active, inactive, expired, error]",
        "all_members, admins_only",
        "--credentials-file <FILE>",
        "--credentials-stdin",
    ] {
        assert!(add.contains(expected), "{expected} missing from:\n{add}");
    }
    let (options, settings) = add.split_once("Global settings:").unwrap();
    assert!(options.contains("--service"));
    assert!(!options.contains("--database-url"), "{add}");
    assert!(settings.contains("--database-url"));
    for secret in ["hunter2-db", KEY, "1234"] {
        assert!(!add.contains(secret), "help shows {secret}");
    }

    let audit = help(&["audit", "list", "--help"]);
    assert!(audit.contains("[default: 100]"), "{audit}");
    for action in [
        "user_registered",
        "integration_secret_resealed",
        "mcp_auth_failed",
        "lease_expired",
    ] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
    assert!(
        help(&["org", "add-member", "--help"]).contains("[possible values: owner, admin, member]")
    );
    assert!(
        help(&["lease", "list", "--help"]).contains("[possible values: active, expired, revoked]")
    );
}

#[test]
fn the_version_is_printed() {
    let output = bare(&["--version"]);
    assert_eq!(output.code, 0);
    assert_eq!(
        output.stdout.trim(),
        format!("mcp-manager {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_missing_argument_is_named_on_one_line() {
    let line = bare(&["user", "add", "--name", "Ada"])
        .refused_with(2)
        .to_owned();
    assert!(line.contains("--email"), "{line}");

    let line = bare(&["integration", "add", "--service", "x", "--user", "1"])
        .refused_with(2)
        .to_owned();
    assert!(line.contains("--credentials"), "{line}");
    assert!(line.contains("--credentials-stdin"), "{line}");
}

#[test]
fn malformed_numbers_are_refused_with_their_flag() {
    for bad in ["abc", "0", "-3", "1.5"] {
        for args in [
            vec!["user", "disable", "--id", bad],
            vec!["token", "create", "--user", "1", "--max-uses", bad],
            vec!["audit", "list", "--limit", bad],
            vec!["lease", "revoke", "--user", bad],
        ] {
            let output = bare(&args);
            let line = output.refused_with(2);
            let flag = args[args.len() - 2];
            assert!(line.contains(flag), "{args:?}: {line}");
            assert!(!line.contains("environment"), "{args:?}: {line}");
        }
    }
    let line = bare(&["audit", "list", "--limit", "10001"])
        .refused_with(2)
        .to_owned();
    assert!(line.contains("1 to 10000"), "{line}");
}

#[test]
fn a_malformed_value_from_the_environment_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value, flag) in [
        ("MCP_LEASE_DEFAULT_TTL", "abc", "--lease-default-ttl"),
        ("MCP_LEASE_MIN_TTL", "0", "--lease-min-ttl"),
        ("MCP_MAX_RENEWALS", "-1", "--max-renewals"),
        ("MCP_EXPIRY_INTERVAL", "0", "--expiry-interval-seconds"),
        ("MCP_WRITER_MEMORY", "maybe", "--writer-memory"),
    ] {
        let mut from_env = command(dir.path(), &["user", "list"]);
        from_env.env(variable, value);
        let output = output(from_env, None);
        let line = output.refused_with(2);
        assert!(line.contains(variable), "{variable}: {line}");
        assert!(line.contains(flag), "{variable}: {line}");

        // The same value on the command line is the flag's, not the variable's.
        let mut from_flag = command(dir.path(), &["user", "list", flag, value]);
        from_flag.env(variable, "5");
        let refused = crate::helpers::output(from_flag, None);
        let line = refused.refused_with(2);
        assert!(!line.contains(variable), "{variable}: {line}");
    }
}

#[test]
fn an_unknown_audit_action_is_refused_listing_the_actions() {
    let line = bare(&["audit", "list", "--action", "lease_stolen"])
        .refused_with(2)
        .to_owned();
    assert!(line.contains("lease_stolen"), "{line}");
    assert!(line.contains("lease_created"), "{line}");
    assert!(line.contains("integration_secret_resealed"), "{line}");
}

/// Credentials are secrets: a refused value is described (line and column), never shown.
async fn invalid_credentials_are_never_echoed(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    let before = cli.event_count().await;
    let marker = "SECRET-MARKER-7f3a";
    let invalid = format!(r#"{{"api_token": "{marker}", oops}}"#);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &invalid).unwrap();
    let path = file.path().to_str().unwrap();
    fn add<'a>(source: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["integration", "add", "--service", "jira", "--user", "1"];
        args.extend_from_slice(source);
        args
    }
    let not_an_object = format!(r#"["{marker}"]"#);

    let refused = [
        cli.run(&add(&["--credentials", &invalid])),
        cli.run(&add(&["--credentials-file", path])),
        cli.run_with(&add(&["--credentials-stdin"]), &[], Some(&invalid)),
        cli.run(&add(&["--credentials", &not_an_object])),
        cli.run(&[
            "integration",
            "rotate",
            "--id",
            "1",
            "--credentials",
            &invalid,
        ]),
    ];

    for output in &refused {
        let line = output.refused_with(2);
        assert!(line.contains("--credentials"), "{line}");
        assert!(!output.stderr.contains(marker), "{}", output.stderr);
        assert!(!output.stdout.contains(marker), "{}", output.stdout);
    }
    assert!(refused[0].stderr.contains("not valid JSON"));
    assert!(refused[3].stderr.contains("JSON object"));
    let both = cli.run(&add(&["--credentials", &invalid, "--credentials-stdin"]));
    let line = both.refused_with(2);
    assert!(line.contains("cannot be used with"), "{line}");
    assert!(!line.contains(marker), "{line}");
    assert_eq!(cli.event_count().await, before, "a refused command wrote");
}

/// `--credentials-file` and `--credentials-stdin` store what they read, as the server hands
/// it out.
async fn credentials_come_from_a_file_or_stdin(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#"{"api_token": "from-a-file"}"#).unwrap();
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "jira",
        "--user",
        "1",
        "--credentials-file",
        file.path().to_str().unwrap(),
    ]);
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "notion",
        "--user",
        "1",
        "--credentials",
        r#"{"api_token": "from-the-flag"}"#,
    ]);
    let rotated = cli
        .run_with(
            &["integration", "rotate", "--id", "2", "--credentials-stdin"],
            &[],
            Some("{\"api_token\": \"from-stdin\"}\n"),
        )
        .json();
    assert_eq!(rotated["secret_version"], 2);
    let token = cli.ok(&["token", "create", "--user", "1"])["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let server = cli.serve(&[]).await;
    let (status, lease) = server.lease(&token, &["jira", "notion"], "srv").await;

    assert_eq!(status, 201, "{lease}");
    assert_eq!(lease["credentials"]["jira"]["api_token"], "from-a-file");
    assert_eq!(lease["credentials"]["notion"]["api_token"], "from-stdin");
    let listed = cli.ok(&["integration", "list"]);
    assert_eq!(listed[0]["key_id"], key_id(KEY));
}

/// Output for an operator is plain text when it does not go to a terminal: clap's errors and
/// help, refusals, and the notices of a created database and key file.
async fn output_is_plain_text_off_a_terminal(backend: Backend) {
    let cli = Cli::new(backend).await;
    let no_key = [("MCP_ENCRYPTION_KEY", "")];
    let outputs = [
        cli.run(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]),
        cli.run_with(
            &[
                "integration",
                "add",
                "--service",
                "x",
                "--user",
                "1",
                "--credentials",
                "{}",
            ],
            if backend == Backend::Sqlite {
                &no_key
            } else {
                &[]
            },
            None,
        ),
        cli.run(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]),
        cli.run(&["user", "disable", "--id", "x"]),
        cli.run(&["user"]),
        cli.run(&["audit", "list", "--action", "nope"]),
        cli.run(&["token", "list", "--user", "9"]),
    ];
    assert!(
        outputs[0].stderr.starts_with("created the "),
        "{}",
        outputs[0].stderr
    );
    if backend == Backend::Sqlite {
        assert!(
            outputs[1].stderr.contains("back it up"),
            "{}",
            outputs[1].stderr
        );
    }
    for output in &outputs[2..] {
        output.refusal();
    }
    for output in &outputs {
        assert!(!output.stderr.contains('\u{1b}'), "{:?}", output.stderr);
        assert!(!output.stdout.contains('\u{1b}'), "{:?}", output.stdout);
    }
}

both_backends! {
    credentials_never_echoed => invalid_credentials_are_never_echoed,
    credentials_sources => credentials_come_from_a_file_or_stdin,
    plain_text => output_is_plain_text_off_a_terminal,
}
