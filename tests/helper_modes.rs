//! keyhelper as every consumer's helper, driven by the real clients where
//! they run here: git (`git credential fill`), the AWS CLI's
//! `credential_process` against moto with IAM auth enforced, Docker's
//! credential-helper protocol exactly as docker-credential-helpers' client
//! speaks it, kubectl's ExecCredential, Claude Code / Cowork output, `run`
//! and `export`.

mod support;

use std::path::Path;
use std::process::Stdio;

use support::{BoundedRun, Home, Moto, stderr, stdout, with_stdin};

const TOKEN: &str = "eyJ0eXAi.helper.token";
const EXPIRES: i64 = 4_102_441_200;

/// A home with a fake `az` (counting its calls) behind credential `work`.
fn home_with_az(tag: &str, extra_config: &str) -> Home {
    let home = Home::new(tag);
    let calls = home.bin().join("calls");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho call >> '{}'\necho '{{\"accessToken\":\"{TOKEN}\",\"expires_on\":{EXPIRES},\"tokenType\":\"Bearer\"}}'\n",
            calls.display()
        ),
    );
    home.write_config(&format!("[credentials.work]\nprovider = \"azure\"\n{extra_config}"));
    home
}

fn az_calls(home: &Home) -> usize {
    std::fs::read_to_string(home.bin().join("calls")).map_or(0, |s| s.lines().count())
}

fn keyhelper_dir() -> &'static Path {
    support::keyhelper_exe().parent().unwrap()
}

#[test]
fn git_credential_fill_gets_the_token_and_its_expiry() {
    let home =
        home_with_az("git", "\n[git.\"git.example.com\"]\ncredential = \"work\"\nusername = \"bot\"\n");
    std::fs::write(
        home.path().join(".gitconfig"),
        format!("[credential]\n\thelper = \"!{} git-credential\"\n", support::keyhelper_exe().display()),
    )
    .unwrap();
    let git = |args: &[&str], input: &str| {
        let mut command = home.command("git");
        command.args(args).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_TERMINAL_PROMPT", "0");
        with_stdin(command, input)
    };
    let fill = git(&["credential", "fill"], "protocol=https\nhost=git.example.com\n\n");
    assert!(fill.status.success(), "{}", stderr(&fill));
    assert_eq!(
        stdout(&fill),
        format!(
            "protocol=https\nhost=git.example.com\nusername=bot\npassword={TOKEN}\npassword_expiry_utc={EXPIRES}\n"
        )
    );
    assert_eq!(az_calls(&home), 1);

    // A rejected credential makes git call `erase`: the cached token is dropped.
    let reject = git(
        &["credential", "reject"],
        &format!("protocol=https\nhost=git.example.com\nusername=bot\npassword={TOKEN}\n\n"),
    );
    assert!(reject.status.success(), "{}", stderr(&reject));
    assert!(git(&["credential", "fill"], "protocol=https\nhost=git.example.com\n\n").status.success());
    assert_eq!(az_calls(&home), 2, "the token was fetched again after erase");

    // Hosts keyhelper does not serve get nothing from it.
    let other = git(&["credential", "fill"], "protocol=https\nhost=elsewhere.example.com\n\n");
    assert!(!other.status.success());
    assert!(stderr(&other).contains("terminal prompts disabled"), "{}", stderr(&other));
    assert!(!stdout(&other).contains(TOKEN));

    // `store` and unknown actions are ignored silently.
    for action in ["store", "frobnicate"] {
        let output = with_stdin(home.keyhelper(&["git-credential", action]), "host=git.example.com\n\n");
        assert!(output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(), "{action}");
    }
}

#[test]
fn the_aws_cli_uses_keyhelper_as_its_credential_process() {
    let tools = support::python_tools();
    let moto = Moto::start(Some(2));
    let home = Home::new("aws-credential-process");
    let aws = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = home.command(tools.join("aws"));
        command
            .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1", "--output", "json"])
            .args(args)
            .env(
                "PATH",
                format!(
                    "{}:{}:{}:/usr/bin:/bin",
                    home.bin().display(),
                    keyhelper_dir().display(),
                    tools.display()
                ),
            );
        for (k, v) in env {
            command.env(k, v);
        }
        command.output_within()
    };
    // The two free actions: a user and its access key.
    let bootstrap = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];
    assert!(aws(&["iam", "create-user", "--user-name", "keyhelper-user"], &bootstrap).status.success());
    let key = aws(&["iam", "create-access-key", "--user-name", "keyhelper-user"], &bootstrap);
    assert!(key.status.success(), "{}", stderr(&key));
    let key: serde_json::Value = serde_json::from_slice(&key.stdout).unwrap();
    let access_key = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let secret_key = key["AccessKey"]["SecretAccessKey"].as_str().unwrap();

    // The keys live in 1Password (a fake `op`, see provider_onepassword.rs).
    home.fake_tool(
        "op",
        &format!(
            "#!/bin/sh\necho '{{\"AccessKeyId\":\"{access_key}\",\"SecretAccessKey\":\"{secret_key}\"}}'\n"
        ),
    );
    home.write_config(
        "[credentials.aws-keys]\nprovider = \"1password\"\nreference = \"op://Infra/aws-ci/credentials\"\n",
    );
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile keyhelper]\ncredential_process = keyhelper get aws-keys --format aws\n\n\
         [profile wrong]\naws_access_key_id = AKIAWRONGWRONGWRONG1\naws_secret_access_key = wrong\n",
    )
    .unwrap();

    let identity = aws(&["--profile", "keyhelper", "sts", "get-caller-identity"], &[]);
    assert!(identity.status.success(), "{}", stderr(&identity));
    let identity: serde_json::Value = serde_json::from_slice(&identity.stdout).unwrap();
    assert!(identity["Arn"].as_str().unwrap().ends_with(":user/keyhelper-user"), "{identity}");
    let refused = aws(&["--profile", "wrong", "sts", "get-caller-identity"], &[]);
    assert!(!refused.status.success(), "moto enforces auth, so the keys above were checked");
}

#[test]
fn kubectl_exec_credential_has_the_v1_required_fields() {
    let home = home_with_az("k8s", "");
    let output = home
        .keyhelper(&["get", "work", "--format", "k8s"])
        .env("KUBERNETES_EXEC_INFO", r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#)
        .output_within();
    assert!(output.status.success(), "{}", stderr(&output));
    let credential: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(credential["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(credential["kind"], "ExecCredential");
    assert_eq!(credential["status"]["token"], TOKEN);
    let timestamp = credential["status"]["expirationTimestamp"].as_str().unwrap();
    assert_eq!(timestamp, "2099-12-31T23:00:00Z");
}

#[test]
fn docker_credential_helper_protocol() {
    let home = home_with_az(
        "docker",
        "\n[docker.\"registry.example.com\"]\ncredential = \"work\"\nusername = \"00000000-0000-0000-0000-000000000000\"\n",
    );
    let helper = home.bin().join("docker-credential-keyhelper");
    std::os::unix::fs::symlink(support::keyhelper_exe(), &helper).unwrap();
    // As docker-credential-helpers' client does: the action as the only
    // argument, the server URL on stdin without a newline.
    let call = |action: &str, input: &str| {
        with_stdin(
            {
                let mut c = home.command(&helper);
                c.arg(action);
                c
            },
            input,
        )
    };

    let get = call("get", "registry.example.com");
    assert!(get.status.success(), "{}", stdout(&get));
    let reply: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"ServerURL": "registry.example.com", "Username": "00000000-0000-0000-0000-000000000000", "Secret": TOKEN})
    );
    let by_url = call("get", "https://registry.example.com/");
    assert!(by_url.status.success());

    let missing = call("get", "https://index.docker.io/v1/");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stdout(&missing), "credentials not found in native keychain\n");

    let list: serde_json::Value = serde_json::from_slice(&call("list", "").stdout).unwrap();
    assert_eq!(list, serde_json::json!({"registry.example.com": "00000000-0000-0000-0000-000000000000"}));
    assert_eq!(stdout(&call("version", "")), format!("keyhelper {}\n", env!("CARGO_PKG_VERSION")));
    let store = call("store", r#"{"ServerURL":"registry.example.com","Username":"u","Secret":"s"}"#);
    assert_eq!(store.status.code(), Some(1));
    assert!(
        stdout(&store).contains("does not store Docker credentials"),
        "errors go to stdout: {}",
        stdout(&store)
    );
    assert!(call("erase", "registry.example.com").status.success());
}

#[test]
fn claude_code_codex_cowork_and_headers_helpers() {
    let home = home_with_az("claude", "");
    // Claude Code runs apiKeyHelper with /bin/sh; Codex runs argv with empty stdin.
    let shell = home
        .command("/bin/sh")
        .args(["-c", &format!("{} get work", support::keyhelper_exe().display())])
        .output_within();
    assert_eq!(stdout(&shell), format!("{TOKEN}\n"));
    assert_eq!(stderr(&shell), "");
    let codex = home.keyhelper(&["get", "work"]).stdin(Stdio::null()).output_within();
    assert_eq!(stdout(&codex), format!("{TOKEN}\n"));

    let cowork = home
        .keyhelper(&["get", "work", "--format", "cowork"])
        .env("CLAUDE_HELPER_CONTEXT", "background")
        .output_within();
    let reply: serde_json::Value = serde_json::from_slice(&cowork.stdout).unwrap();
    assert_eq!(reply["token"], TOKEN);
    assert_eq!(reply["headers"]["Authorization"], format!("Bearer {TOKEN}"));
    let headers: serde_json::Value =
        serde_json::from_slice(&home.run(&["get", "work", "--format", "headers"]).stdout).unwrap();
    assert_eq!(headers, serde_json::json!({"Authorization": format!("Bearer {TOKEN}")}));
    assert_eq!(
        stdout(&home.run(&["get", "work", "--format", "env"])),
        format!("AZURE_OPENAI_AD_TOKEN={TOKEN}\n")
    );
    let aws = home.run(&["get", "work", "--format", "aws"]);
    assert_eq!(aws.status.code(), Some(2));
    assert!(stderr(&aws).contains("needs a secret holding AWS keys"), "{}", stderr(&aws));
    assert!(!stderr(&aws).contains(TOKEN));
}

#[test]
fn run_puts_secrets_in_the_environment_and_keeps_the_exit_status() {
    let home = home_with_az("run", "");
    let output = home.run(&[
        "run",
        "--env",
        "OPENAI_API_KEY=work",
        "--",
        "sh",
        "-c",
        "echo \"$OPENAI_API_KEY\"; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(stdout(&output), format!("{TOKEN}\n"));
    let default_name =
        home.run(&["run", "--env", "work", "--", "sh", "-c", "echo \"$AZURE_OPENAI_AD_TOKEN\""]);
    assert_eq!(stdout(&default_name), format!("{TOKEN}\n"));
    let masked = home.run(&[
        "run",
        "--mask",
        "-e",
        "T=work",
        "--",
        "sh",
        "-c",
        "echo \"token is $T\"; echo \"$T\" >&2; exit 3",
    ]);
    assert_eq!(masked.status.code(), Some(3));
    assert_eq!(stdout(&masked), "token is <concealed by keyhelper>\n");
    assert_eq!(stderr(&masked), "<concealed by keyhelper>\n");
    let missing = home.run(&["run", "-e", "T=work", "--", "no-such-program-here"]);
    assert_eq!(missing.status.code(), Some(127), "a shell's code for a program not found");
    assert!(stderr(&missing).contains("cannot run `no-such-program-here`"), "{}", stderr(&missing));
}

#[test]
fn run_with_mask_forwards_signals_to_the_program() {
    let home = home_with_az("run-signals", "");
    let mut child = home
        .keyhelper(&[
            "run",
            "--mask",
            "-e",
            "T=work",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = support::BoundedLines::new(child.stdout.take().unwrap());
    assert_eq!(lines.next_line().unwrap(), "ready");
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(lines.next_line().unwrap(), "got-term");
    assert_eq!(support::wait_within(&mut child).code(), Some(42));
}

#[test]
fn export_prints_env_dotenv_and_json() {
    let home = home_with_az("export", "");
    assert_eq!(
        stdout(&home.run(&["export", "OPENAI_API_KEY=work"])),
        format!("export OPENAI_API_KEY='{TOKEN}'\n")
    );
    assert_eq!(
        stdout(&home.run(&["export", "--format", "dotenv", "work"])),
        format!("AZURE_OPENAI_AD_TOKEN=\"{TOKEN}\"\n")
    );
    let json: serde_json::Value =
        serde_json::from_slice(&home.run(&["export", "--format", "json", "A=work", "B=work"]).stdout)
            .unwrap();
    assert_eq!(json, serde_json::json!({"A": TOKEN, "B": TOKEN}));
    let twice = home.run(&["export", "A=work", "A=work"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(stderr(&twice).contains("A is bound twice"));
}
