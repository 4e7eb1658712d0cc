//! The `oauth2` provider against a real OpenID Connect server (npm's
//! `oauth2-mock-server`, see `support::oidc`): discovery, client credentials
//! with a stored secret (Basic and in the form), a workload's client
//! assertion file, sign-in in a browser (authorization code + PKCE through a
//! loopback redirect, the browser played by `curl -L`) and with the device
//! flow, refresh tokens that the server rotates and keyhelper saves back, and
//! each refusal as one line naming the fix.

mod support;

use std::process::Output;

use support::oidc::OidcServer;
use support::{BoundedRun, Home, stderr, stdout};

const CLIENT_ID: &str = "kh-cli";
const CLIENT_SECRET: &str = "s3cr:et-client-secret";

fn server() -> OidcServer {
    OidcServer::start(&[
        ("OAUTH2_CLIENT_ID", CLIENT_ID),
        ("OAUTH2_CLIENT_SECRET", CLIENT_SECRET),
        ("OAUTH2_EXPIRES_IN", "600"),
    ])
}

/// A home whose `gateway` credential uses `server` through `connection`,
/// with `extra` config lines.
fn home(tag: &str, server: &OidcServer, extra: &str) -> Home {
    let home = Home::new(tag);
    home.write_config(&format!(
        "[credentials.gateway]\nprovider = \"oauth2\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nconnection = \"gw\"\n{extra}",
        server.issuer
    ));
    // Plays the browser: follows the identity provider's redirect back to
    // keyhelper's loopback listener.
    home.fake_tool("browser", "#!/bin/sh\nexec curl -sS -L -o /dev/null \"$1\"\n");
    // The same, after someone else hit the listener with a forged answer.
    home.fake_tool(
        "browser-after-intruder",
        "#!/bin/sh\nport=$(printf '%s' \"$1\" | sed -n 's/.*redirect_uri=http%3A%2F%2F127.0.0.1%3A\\([0-9]*\\)%2Fcallback.*/\\1/p')\n\
         curl -s -o /dev/null \"http://127.0.0.1:$port/callback?state=forged&code=stolen\"\n\
         exec curl -sS -L -o /dev/null \"$1\"\n",
    );
    home
}

fn login_with_stdin(home: &Home, args: &[&str], secret: &str) -> Output {
    support::with_stdin(home.keyhelper(args), secret)
}

fn assert_one_line_failure(output: &Output, code: i32, needles: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    assert!(stdout(output).is_empty(), "nothing on stdout: {}", stdout(output));
}

/// An access token the server signed: a JWT of three parts.
fn assert_jwt(output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
    let token = stdout(output);
    assert_eq!(token.trim_end().split('.').count(), 3, "{token}");
    assert!(token.starts_with("eyJ"), "{token}");
}

#[test]
fn client_credentials_with_a_stored_secret_found_through_discovery() {
    let server = server();
    let home = home(
        "oauth2-client-credentials",
        &server,
        "scope = \"read write\"\naudience = \"https://api.example\"\n",
    );
    let login = login_with_stdin(&home, &["login", "oauth2", "--connection", "gw", "--stdin"], CLIENT_SECRET);
    assert!(login.status.success(), "{}", stderr(&login));
    assert!(stdout(&home.run(&["list"])).contains("secret stored (file, connection 'gw')"));

    let first = home.run(&["get", "gateway"]);
    assert_jwt(&first);
    let second = home.run(&["get", "gateway"]);
    assert_eq!(stdout(&second), stdout(&first), "the second get is served from the cache");
    let requests = server.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request["grant_type"], "client_credentials");
    assert_eq!(request["auth"], "basic", "client_secret_basic by default");
    assert_eq!(
        (request["scope"].as_str(), request["audience"].as_str()),
        (Some("read write"), Some("https://api.example"))
    );
    assert_eq!(request["status"], 200);

    let status = stdout(&home.run(&["status"]));
    assert!(!status.contains(CLIENT_SECRET) && !status.contains(stdout(&first).trim()), "{status}");
}

#[test]
fn the_client_secret_may_travel_in_the_form() {
    let server = server();
    let home = home("oauth2-client-post", &server, "client_auth = \"post\"\n");
    login_with_stdin(&home, &["login", "oauth2", "--connection", "gw", "--stdin"], CLIENT_SECRET);
    assert_jwt(&home.run(&["get", "gateway"]));
    assert_eq!(server.token_requests()[0]["auth"], "body");
}

#[test]
fn a_wrong_client_secret_is_one_line_naming_the_login_to_fix_it() {
    let server = server();
    let home = home("oauth2-wrong-secret", &server, "");
    login_with_stdin(&home, &["login", "oauth2", "--connection", "gw", "--stdin"], "wrong-client-secret");
    let get = home.run(&["get", "gateway"]);
    assert_one_line_failure(
        &get,
        4,
        &[
            "refused client 'kh-cli'",
            "invalid_client",
            "keyhelper login oauth2 --connection gw --stdin --force",
        ],
    );
    assert!(!stderr(&get).contains("wrong-client-secret"));
    assert_eq!(server.token_requests()[0]["status"], 401);
}

#[test]
fn nothing_stored_names_both_ways_to_sign_in() {
    let server = server();
    let home = home("oauth2-nothing-stored", &server, "");
    assert!(
        stdout(&home.run(&["list"]))
            .contains("no secret stored: run `keyhelper login oauth2 --connection gw`")
    );
    assert_one_line_failure(
        &home.run(&["get", "gateway"]),
        4,
        &[
            "no client secret or refresh token is stored for oauth2 connection 'gw'",
            "keyhelper login oauth2 --connection gw",
        ],
    );
    assert!(server.token_requests().is_empty());
}

#[test]
fn a_workload_identity_token_file_is_the_client_assertion() {
    let server = OidcServer::start(&[("OAUTH2_EXPECTED_ASSERTION", "eyJhbGciOiJSUzI1NiJ9.workload.sig")]);
    let home = Home::new("oauth2-assertion");
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.workload.sig\n").unwrap();
    home.write_config(&format!(
        "[credentials.ci]\nprovider = \"oauth2\"\nissuer = \"{}\"\nclient_id = \"ci-app\"\nscope = \"api\"\nclient_assertion_file = \"{}\"\n",
        server.issuer,
        token_file.display()
    ));
    let list = stdout(&home.run(&["list"]));
    assert!(!list.contains("no secret stored"), "an assertion file needs nothing stored: {list}");
    assert_jwt(&home.run(&["get", "ci"]));
    let request = &server.token_requests()[0];
    assert_eq!(
        (request["grant_type"].as_str(), request["auth"].as_str()),
        (Some("client_credentials"), Some("assertion"))
    );

    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.someone-else.sig").unwrap();
    let refused = home.run(&["get", "ci", "--no-cache"]);
    assert_one_line_failure(
        &refused,
        6,
        &["refused the client assertion of 'ci-app'", "client_assertion_file"],
    );
    assert!(!stderr(&refused).contains("someone-else"), "the assertion is never quoted");
}

#[test]
fn browser_sign_in_with_pkce_then_refresh_tokens_rotate_and_are_saved_back() {
    let server = server();
    let home = home("oauth2-browser", &server, "scope = \"openid offline_access\"\n");
    // A confidential client: its secret is stored first, and used for the code exchange.
    login_with_stdin(&home, &["login", "oauth2", "--connection", "gw", "--stdin"], CLIENT_SECRET);
    // A forged answer to the listener is refused, and the real one still signs in.
    let browser = home.bin().join("browser-after-intruder");
    let sign_in =
        home.keyhelper(&["login", "oauth2", "--connection", "gw"]).env("BROWSER", &browser).output_within();
    assert!(sign_in.status.success(), "{}", stderr(&sign_in));
    assert!(stderr(&sign_in).contains("signed in; stored the refresh token of oauth2 connection 'gw'"));
    assert!(stderr(&sign_in).contains("ignored a request to the sign-in listener with another state"));
    let exchange = &server.token_requests()[0];
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["code_verifier_present"], true, "PKCE: the server checked the verifier");
    assert_eq!(exchange["status"], 200);
    let list = stdout(&home.run(&["list"]));
    assert!(list.contains("gw (refresh_token)"), "{list}");

    // Each renewal uses the stored refresh token once; the server answers a
    // new one (the old is then invalid), which must have been saved.
    for _ in 0..3 {
        assert_jwt(&home.run(&["get", "gateway", "--no-cache"]));
    }
    let refreshes: Vec<_> =
        server.token_requests().into_iter().filter(|r| r["grant_type"] == "refresh_token").collect();
    assert_eq!(refreshes.len(), 3, "{refreshes:?}");
    assert!(refreshes.iter().all(|r| r["refresh_token_ok"] == true && r["status"] == 200), "{refreshes:?}");
    assert!(refreshes.iter().all(|r| r["auth"] == "basic"), "the confidential client authenticates");

    // A refresh token the server no longer knows (revoked, expired).
    let replace = login_with_stdin(
        &home,
        &["login", "oauth2", "--connection", "gw", "--refresh-token", "--stdin", "--force"],
        "rt-revoked-long-ago",
    );
    assert!(replace.status.success(), "{}", stderr(&replace));
    let refused = home.run(&["get", "gateway", "--no-cache"]);
    assert_one_line_failure(
        &refused,
        4,
        &["was refused (expired or revoked)", "sign in again: `keyhelper login oauth2 --connection gw`"],
    );
    assert!(!stderr(&refused).contains("rt-revoked-long-ago"));

    let logout = home.run(&["logout", "oauth2", "--connection", "gw"]);
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(
        !stdout(&home.run(&["list"])).contains("gw (refresh_token)"),
        "logout removes every secret of the connection"
    );
}

#[test]
fn concurrent_renewals_through_one_connection_never_spend_the_same_refresh_token() {
    let server = server();
    // Two credentials (two scopes) on one connection: two cache entries, one
    // rotating refresh token.
    let home = home(
        "oauth2-concurrent",
        &server,
        "scope = \"openid offline_access\"\n\n[credentials.other]\nprovider = \"oauth2\"\nclient_id = \"kh-cli\"\nconnection = \"gw\"\nscope = \"openid\"\n",
    );
    let config = std::fs::read_to_string(home.config_file()).unwrap();
    home.write_config(
        &config.replace(
            "[credentials.other]\n",
            &format!("[credentials.other]\nissuer = \"{}\"\n", server.issuer),
        ),
    );
    login_with_stdin(&home, &["login", "oauth2", "--connection", "gw", "--stdin"], CLIENT_SECRET);
    let browser = home.bin().join("browser");
    let sign_in =
        home.keyhelper(&["login", "oauth2", "--connection", "gw"]).env("BROWSER", &browser).output_within();
    assert!(sign_in.status.success(), "{}", stderr(&sign_in));
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let name = if i % 2 == 0 { "gateway" } else { "other" };
            home.keyhelper(&["get", name, "--no-cache"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for racer in racers {
        let output = support::finish(racer);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let refreshes: Vec<_> =
        server.token_requests().into_iter().filter(|r| r["grant_type"] == "refresh_token").collect();
    assert_eq!(refreshes.len(), 12, "{refreshes:?}");
    assert!(
        refreshes.iter().all(|r| r["refresh_token_ok"] == true),
        "a refresh token was spent twice: {refreshes:?}"
    );
}

#[test]
fn device_sign_in_for_a_public_client() {
    let server =
        OidcServer::start(&[("OAUTH2_CLIENT_ID", "device-app"), ("OAUTH2_DEVICE_PENDING_POLLS", "1")]);
    let home = Home::new("oauth2-device");
    home.write_config(&format!(
        "[credentials.me]\nprovider = \"oauth2\"\nissuer = \"{}\"\nclient_id = \"device-app\"\nscope = \"openid offline_access\"\n",
        server.issuer
    ));
    let sign_in = home.run(&["login", "oauth2", "--device"]);
    assert!(sign_in.status.success(), "{}", stderr(&sign_in));
    let text = stderr(&sign_in);
    assert!(text.contains(&format!("open {}/device and enter the code ", server.issuer)), "{text}");
    let polls: Vec<_> = server.token_requests();
    assert_eq!(polls.len(), 2, "one pending poll, then the tokens: {polls:?}");
    assert!(polls.iter().all(|p| p["auth"] == "none"), "a public client sends only its id");
    assert_jwt(&home.run(&["get", "me"]));
    assert_eq!(server.token_requests().last().unwrap()["grant_type"], "refresh_token");
}

#[test]
fn bad_settings_are_config_errors_before_any_request() {
    let home = Home::new("oauth2-bad-settings");
    home.write_config(
        "[credentials.plain]\nprovider = \"oauth2\"\nissuer = \"http://idp.example.com\"\nclient_id = \"x\"\n\
         [credentials.nowhere]\nprovider = \"oauth2\"\nclient_id = \"x\"\n",
    );
    assert_one_line_failure(
        &home.run(&["get", "plain"]),
        3,
        &["`issuer` of credential 'plain' is not https", "https://"],
    );
    assert_one_line_failure(&home.run(&["get", "nowhere"]), 3, &["sets neither `issuer` nor `token_url`"]);
    let hash = home.run(&["login", "oauth2", "--connection", "default#refresh_token", "--stdin"]);
    assert_eq!(hash.status.code(), Some(2), "{}", stderr(&hash));
    assert!(stderr(&hash).contains("no `/`, `#` or control characters"), "{}", stderr(&hash));
    assert_one_line_failure(
        &home.run(&["login", "openai", "--device"]),
        2,
        &["--device and --refresh-token are for OAuth sign-in; provider 'openai' has none"],
    );
}
