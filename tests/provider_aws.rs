//! AWS Secrets Manager end to end with real components: the AWS CLI (awscli
//! from PyPI) against a moto server on loopback. `cargo xtask test` installs
//! both into `target/test-tools/venv`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{BoundedRun, Home, Moto, stderr, stdout};

struct AwsWorld {
    home: Home,
    tools: PathBuf,
    moto: Moto,
}

impl AwsWorld {
    fn new(tag: &str) -> Self {
        let tools = support::python_tools();
        let moto = Moto::start(None);
        let home = Home::new(tag);
        home.write_config(&format!(
            "[credentials.aws-whole]\nprovider = \"aws-secrets-manager\"\nsecret_id = \"openai-key\"\nendpoint_url = \"{e}\"\nregion = \"us-east-1\"\n\n\
             [credentials.aws-key]\nprovider = \"aws-secrets-manager\"\nsecret_id = \"openai-key\"\njson_key = \"api_key\"\nendpoint_url = \"{e}\"\nregion = \"us-east-1\"\n\n\
             [credentials.aws-shorthand]\nprovider = \"aws-secrets-manager\"\nsecret_id = \"openai-key:api_key:AWSCURRENT:\"\nendpoint_url = \"{e}\"\nregion = \"us-east-1\"\n\n\
             [credentials.aws-binary]\nprovider = \"aws-secrets-manager\"\nsecret_id = \"binary-key\"\nendpoint_url = \"{e}\"\nregion = \"us-east-1\"\n\n\
             [credentials.aws-missing]\nprovider = \"aws-secrets-manager\"\nsecret_id = \"no-such-secret\"\nendpoint_url = \"{e}\"\nregion = \"us-east-1\"\n",
            e = moto.endpoint
        ));
        Self { home, tools, moto }
    }

    fn with_env(&self, mut command: Command) -> Command {
        command
            .env("PATH", format!("{}:{}:/usr/bin:/bin", self.home.bin().display(), self.tools.display()))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        command
    }

    /// The real AWS CLI against moto.
    fn aws(&self, args: &[&str]) {
        let mut command = self.with_env(self.home.command(self.tools.join("aws")));
        command.args(["--endpoint-url", &self.moto.endpoint, "--region", "us-east-1"]).args(args);
        let output = command.output_within();
        assert!(output.status.success(), "aws {args:?}: {}", stderr(&output));
    }

    fn get(&self, name: &str) -> std::process::Output {
        self.with_env(self.home.keyhelper(&["get", name])).output_within()
    }
}

#[test]
fn whole_json_key_shorthand_rotation_and_missing() {
    let world = AwsWorld::new("aws-moto");
    world.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "openai-key",
        "--secret-string",
        r#"{"api_key":"sk-aws-first","org":"acme"}"#,
    ]);

    let whole = world.get("aws-whole");
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(stdout(&whole), "{\"api_key\":\"sk-aws-first\",\"org\":\"acme\"}\n");
    let key = world.get("aws-key");
    assert_eq!(stdout(&key), "sk-aws-first\n", "{}", stderr(&key));
    assert_eq!(stdout(&world.get("aws-shorthand")), "sk-aws-first\n");

    world.aws(&[
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        "openai-key",
        "--secret-string",
        r#"{"api_key":"sk-aws-rotated"}"#,
    ]);
    assert_eq!(stdout(&world.get("aws-key")), "sk-aws-first\n", "served from the cache (15m ttl)");
    let clear = world.with_env(world.home.keyhelper(&["cache", "clear", "aws-key"])).output_within();
    assert!(clear.status.success(), "{}", stderr(&clear));
    assert_eq!(stderr(&clear), "keyhelper: removed 1 cached secret\n");
    let rotated = world.get("aws-key");
    assert_eq!(stdout(&rotated), "sk-aws-rotated\n", "{}", stderr(&rotated));

    let missing = world.get("aws-missing");
    assert_eq!(missing.status.code(), Some(5), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("AWS Secrets Manager has no secret `no-such-secret`"),
        "{}",
        stderr(&missing)
    );
    assert!(missing.stdout.is_empty());
}

#[test]
fn binary_secrets_are_decoded() {
    let world = AwsWorld::new("aws-binary");
    let file = world.home.path().join("binary.txt");
    std::fs::write(&file, "sk-from-secret-binary").unwrap();
    world.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "binary-key",
        "--secret-binary",
        &format!("fileb://{}", file.display()),
    ]);
    let output = world.get("aws-binary");
    assert_eq!(stdout(&output), "sk-from-secret-binary\n", "{}", stderr(&output));
}
