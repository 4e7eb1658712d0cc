//! What a plugin call may do: the capabilities its manifest declares,
//! intersected with what the user granted, with option placeholders filled in.
//! Every host call is checked here and nowhere else.

use std::collections::BTreeMap;

use keyhelper_core::capabilities::{Capabilities, ExecCapability, is_plain_value};

/// The effective capabilities of one plugin call, with option placeholders in
/// URL patterns already filled in.
#[derive(Debug, Clone)]
pub struct CapabilityGrant {
    allowed: Capabilities,
}

impl CapabilityGrant {
    /// The grant for a call: `declared ∩ granted`, with `{option}` placeholders
    /// in URL patterns replaced by the credential's `options`, and
    /// `{env:NAME}` ones by the granted environment variable `NAME`.
    pub fn new(declared: &Capabilities, granted: &Capabilities, options: &BTreeMap<String, String>) -> Self {
        let mut allowed = declared.intersect(granted);
        let list = |option: &Option<String>| -> Vec<String> {
            option
                .as_ref()
                .and_then(|name| options.get(name))
                .and_then(|json| serde_json::from_str::<Vec<String>>(json).ok())
                .unwrap_or_default()
        };
        if let Some((command, args)) = list(&allowed.exec_option).split_first() {
            allowed.exec.push(ExecCapability {
                command: command.clone(),
                args: args.to_vec(),
                flags: Vec::new(),
            });
        }
        allowed.env.extend(list(&allowed.env_option));
        allowed.http = allowed
            .http
            .iter()
            .filter_map(|pattern| fill_placeholders(pattern, options, &allowed.env))
            .map(|pattern| normalised(&pattern).unwrap_or(pattern))
            .collect();
        allowed.files = allowed
            .files
            .iter()
            .filter_map(|pattern| fill_placeholders(pattern, options, &allowed.env))
            .filter(|path| !path.is_empty())
            .collect();
        Self { allowed }
    }

    /// Whether `program args…` may run.
    pub fn check_exec(&self, program: &str, args: &[String]) -> Result<(), String> {
        let rules: Vec<_> = self.allowed.exec.iter().filter(|e| e.command == program).collect();
        if rules.is_empty() {
            return Err(format!("running `{program}` is not a granted capability"));
        }
        let mut why = String::new();
        for rule in &rules {
            match rule_matches(rule, args) {
                Ok(()) => return Ok(()),
                Err(reason) => why = reason,
            }
        }
        let allowed = rules
            .iter()
            .flat_map(|rule| {
                Capabilities { exec: vec![(*rule).clone()], ..Capabilities::default() }.describe()
            })
            .map(|line| line.trim_start_matches("run ").to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!("running `{program}` with these arguments is not granted: {why} (allowed: {allowed})"))
    }

    /// Whether the environment variable `name` may be read or passed to a program.
    pub fn check_env(&self, name: &str) -> Result<(), String> {
        if self.allowed.env.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(format!("reading environment variable {name} is not a granted capability"))
        }
    }

    /// Names of the environment variables programs may inherit.
    pub fn env_names(&self) -> &[String] {
        &self.allowed.env
    }

    /// Whether a request to `url` may be sent; if so, the URL to send: the
    /// normalised form that was checked (dot segments, `%2e`, default ports,
    /// letter case and a trailing dot of the host resolved), so what is
    /// checked is exactly what is requested.
    pub fn check_url(&self, url: &str) -> Result<String, String> {
        let denied = || format!("requesting {url} is not a granted capability");
        let url = normalised(url).ok_or_else(denied)?;
        if self.allowed.http.iter().any(|pattern| url_matches(pattern, &url)) {
            Ok(url)
        } else {
            Err(denied())
        }
    }

    /// Whether a plugin may set the request header `name`: not those that
    /// decide where a request goes or how it is framed.
    pub fn check_header(&self, name: &str) -> Result<(), String> {
        const RESERVED: [&str; 5] = ["host", "content-length", "transfer-encoding", "connection", "upgrade"];
        if RESERVED.iter().any(|reserved| name.trim().eq_ignore_ascii_case(reserved)) {
            Err(format!("setting the {name} header is not allowed (the host sets it from the granted URL)"))
        } else {
            Ok(())
        }
    }

    /// Whether the plugin may read the file `path`: exactly one of the granted
    /// paths, placeholders filled in.
    pub fn check_file(&self, path: &str) -> Result<(), String> {
        if self.allowed.files.iter().any(|granted| granted == path) {
            Ok(())
        } else {
            Err(format!("reading the file {path} is not a granted capability"))
        }
    }

    /// Whether the plugin may save named secrets for its provider's connections.
    pub fn check_save_secrets(&self) -> Result<(), String> {
        if self.allowed.save_secrets {
            Ok(())
        } else {
            Err("saving secrets is not a granted capability".to_string())
        }
    }

    /// Whether the plugin may read its provider's stored secrets.
    pub fn check_stored_secrets(&self) -> Result<(), String> {
        if self.allowed.stored_secrets {
            Ok(())
        } else {
            Err("reading stored secrets is not a granted capability".to_string())
        }
    }
}

/// Whether `args` fit `rule`: its options (each at most once, anywhere)
/// taken out, the rest match its positional pattern. Explains a mismatch.
fn rule_matches(rule: &ExecCapability, args: &[String]) -> Result<(), String> {
    // A pattern of literals only (a command line from the user's config)
    // matches exactly those arguments, options included.
    if rule.flags.is_empty() && !rule.args.iter().any(|a| a == "*" || a == "**") && rule.args == args {
        return Ok(());
    }
    let mut positional = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg.as_str());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        };
        let Some(flag) = rule.flags.iter().find(|f| f.flag == name) else {
            return Err(format!(
                "option `{name}` is not declared (`*` and `**` match no option: list it in the manifest, e.g. flags = [{{ flag = \"{name}\", value = \"*\" }}], and reinstall)"
            ));
        };
        if seen.contains(&name) {
            return Err(format!("option `{name}` is given twice"));
        }
        seen.push(name);
        match (&flag.value, inline) {
            (None, None) => {}
            (None, Some(_)) => return Err(format!("option `{name}` takes no value")),
            (Some(pattern), inline) => {
                let value = inline.or_else(|| rest.next().map(String::as_str)).unwrap_or_default();
                if !value_matches(pattern, value) {
                    return Err(format!("the value of `{name}` is not allowed by `{pattern}`"));
                }
            }
        }
    }
    if positional_match(&rule.args, &positional) {
        Ok(())
    } else {
        Err(format!("the arguments `{}` do not fit `{}`", positional.join(" "), rule.args.join(" ")))
    }
}

/// A literal matches itself; `*` any one plain value (see [`is_plain_value`]).
fn value_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" { is_plain_value(value) } else { pattern == value }
}

fn positional_match(pattern: &[String], args: &[&str]) -> bool {
    match pattern.split_first() {
        None => args.is_empty(),
        Some((first, _)) if first == "**" => args.iter().all(|arg| is_plain_value(arg)),
        Some((first, rest)) => match args.split_first() {
            Some((arg, args_rest)) => value_matches(first, arg) && positional_match(rest, args_rest),
            None => false,
        },
    }
}

/// Replaces `{name}` with the option's value, `{origin:name}` with the
/// scheme, host and port of the URL in that option (so a pattern can follow
/// an OpenID discovery document within its issuer's host), and `{env:NAME}`
/// with the value of the environment variable `NAME` if it is among the
/// granted `env` (each without a trailing `/`). A pattern naming an option
/// the credential does not set, or a variable that is not granted or not set,
/// allows nothing.
fn fill_placeholders(pattern: &str, options: &BTreeMap<String, String>, env: &[String]) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let key = &rest[start + 1..end];
        let value = match key.strip_prefix("env:") {
            Some(name) if env.iter().any(|granted| granted == name) => std::env::var(name).ok()?,
            Some(_) => return None,
            None => match key.strip_prefix("origin:") {
                Some(name) => origin(options.get(name)?)?,
                None => options.get(key)?.clone(),
            },
        };
        out.push_str(value.trim_end_matches('/'));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `scheme://host[:port]` of a plain http(s) URL.
pub fn origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

/// `url` parsed and serialised again, if it is plain http(s) without
/// userinfo: the form the request is checked and sent in.
fn normalised(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return None;
    }
    let host = parsed.host_str()?.to_string();
    if let Some(bare) = host.strip_suffix('.') {
        parsed.set_host(Some(bare)).ok()?;
    }
    parsed.set_fragment(None);
    Some(parsed.to_string())
}

/// Glob match where `*` matches any run of characters, but the scheme and host
/// part of the pattern (everything before its first `*`) must match literally
/// and end at a path boundary.
fn url_matches(pattern: &str, url: &str) -> bool {
    let literal_prefix = pattern.split('*').next().unwrap_or_default();
    let after_scheme = literal_prefix.split_once("://").map_or("", |(_, r)| r);
    if !after_scheme.contains('/') && pattern.contains('*') {
        // `https://host*` would also match `https://host.evil.com`.
        return false;
    }
    glob(pattern.as_bytes(), url.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.split_first().is_some_and(|(t, text_rest)| t == c && glob(rest, text_rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_core::capabilities::FlagCapability;

    fn flag(name: &str, value: Option<&str>) -> FlagCapability {
        FlagCapability { flag: name.into(), value: value.map(Into::into) }
    }

    fn caps() -> Capabilities {
        Capabilities {
            exec: vec![
                ExecCapability {
                    command: "az".into(),
                    args: vec!["account".into(), "get-access-token".into()],
                    flags: vec![
                        flag("--scope", Some("*")),
                        flag("--output", Some("json")),
                        flag("--debug", None),
                    ],
                },
                ExecCapability {
                    command: "pass".into(),
                    args: vec!["show".into(), "**".into()],
                    flags: vec![],
                },
            ],
            env: vec!["AZURE_CONFIG_DIR".into()],
            http: vec!["{base_url}/v1/models".into(), "https://example.com/api/*".into()],
            stored_secrets: true,
            ..Capabilities::default()
        }
    }

    fn grant(options: &[(&str, &str)]) -> CapabilityGrant {
        let options = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CapabilityGrant::new(&caps(), &caps(), &options)
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_placeholders_need_the_variable_granted_and_set() {
        let none = BTreeMap::new();
        let home = std::env::var("HOME").expect("tests run with HOME set");
        assert_eq!(
            fill_placeholders("{env:HOME}/token?*", &none, &["HOME".into()]),
            Some(format!("{}/token?*", home.trim_end_matches('/')))
        );
        assert_eq!(fill_placeholders("{env:HOME}/token?*", &none, &["AZURE_CONFIG_DIR".into()]), None);
        let unset = "KEYHELPER_TEST_NEVER_SET";
        assert_eq!(fill_placeholders("{env:KEYHELPER_TEST_NEVER_SET}/x", &none, &[unset.into()]), None);
    }

    #[test]
    fn exec_needs_the_program_and_its_argument_pattern() {
        let g = grant(&[]);
        assert!(g.check_exec("az", &args(&["account", "get-access-token", "--scope", "x"])).is_ok());
        assert!(g.check_exec("az", &args(&["account", "get-access-token"])).is_ok());
        assert!(g.check_exec("az", &args(&["ad", "sp", "create"])).is_err());
        assert!(g.check_exec("az", &args(&["account"])).is_err());
        assert!(g.check_exec("curl", &args(&["account", "get-access-token"])).is_err());
    }

    #[test]
    fn origin_placeholders_confine_a_pattern_to_the_options_host() {
        let options =
            BTreeMap::from([("issuer".to_string(), "https://IdP.example.com:8443/realms/ai/".to_string())]);
        assert_eq!(
            fill_placeholders("{origin:issuer}/*", &options, &[]),
            Some("https://idp.example.com:8443/*".to_string())
        );
        let declared = Capabilities { http: vec!["{origin:issuer}/*".into()], ..Capabilities::default() };
        let g = CapabilityGrant::new(&declared, &declared, &options);
        assert!(g.check_url("https://idp.example.com:8443/realms/ai/protocol/openid-connect/token").is_ok());
        assert!(g.check_url("https://idp.example.com/token").is_err(), "another port is another origin");
        assert!(g.check_url("https://idp.example.com:8443.evil.com/token").is_err());
        let not_a_url = BTreeMap::from([("issuer".to_string(), "idp.example.com".to_string())]);
        assert_eq!(fill_placeholders("{origin:issuer}/*", &not_a_url, &[]), None);
    }

    #[test]
    fn files_are_granted_by_exact_path_with_placeholders_filled() {
        let declared = Capabilities { files: vec!["{token_file}".into()], ..Capabilities::default() };
        let options = BTreeMap::from([("token_file".to_string(), "/run/secrets/token".to_string())]);
        let g = CapabilityGrant::new(&declared, &declared, &options);
        assert!(g.check_file("/run/secrets/token").is_ok());
        assert!(g.check_file("/run/secrets/../secrets/token").is_err());
        assert!(g.check_file("/etc/passwd").is_err());
        let unset = CapabilityGrant::new(&declared, &declared, &BTreeMap::new());
        assert!(unset.check_file("").is_err() && unset.check_file("{token_file}").is_err());
        let ungranted = CapabilityGrant::new(&declared, &Capabilities::default(), &options);
        assert!(ungranted.check_file("/run/secrets/token").is_err());
    }

    #[test]
    fn single_star_matches_exactly_one_plain_argument() {
        let pattern = args(&["read", "*"]);
        assert!(positional_match(&pattern, &["read", "op://a/b/c"]));
        assert!(!positional_match(&pattern, &["read"]));
        assert!(!positional_match(&pattern, &["read", "a", "b"]));
        for not_plain in ["--out-file", "-o", "@/etc/passwd", "file:///etc/passwd", "FILEB://x"] {
            assert!(!positional_match(&pattern, &["read", not_plain]), "{not_plain}");
            assert!(!positional_match(&args(&["read", "**"]), &["read", "a", not_plain]), "{not_plain}");
        }
    }

    #[test]
    fn options_must_be_declared_and_may_come_in_any_order() {
        let g = grant(&[]);
        let ok = |list: &[&str]| g.check_exec("az", &args(list));
        assert!(
            ok(&["account", "--output", "json", "get-access-token", "--scope", "api://x/.default"]).is_ok()
        );
        assert!(ok(&["account", "get-access-token", "--scope=api://x", "--debug"]).is_ok());
        for (bad, why) in [
            (&["account", "get-access-token", "--tenant", "t"][..], "option `--tenant` is not declared"),
            (&["account", "get-access-token", "--output", "tsv"][..], "not allowed by `json`"),
            (&["account", "get-access-token", "--scope", "@scope.txt"][..], "not allowed by `*`"),
            (&["account", "get-access-token", "--scope", "a", "--scope", "b"][..], "given twice"),
            (&["account", "get-access-token", "--debug=yes"][..], "takes no value"),
            (&["account", "get-access-token", "extra"][..], "do not fit"),
        ] {
            let error = ok(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert!(g.check_exec("pass", &args(&["show", "a/b", "c"])).is_ok());
        assert!(
            g.check_exec("pass", &args(&["show", "--clip", "a"])).unwrap_err().contains("match no option")
        );
    }

    #[test]
    fn env_is_by_exact_name() {
        let g = grant(&[]);
        assert!(g.check_env("AZURE_CONFIG_DIR").is_ok());
        assert!(g.check_env("AWS_SECRET_ACCESS_KEY").is_err());
    }

    #[test]
    fn url_patterns_fill_options_and_keep_the_host() {
        let g = grant(&[("base_url", "http://127.0.0.1:8080/")]);
        assert!(g.check_url("http://127.0.0.1:8080/v1/models").is_ok());
        assert!(g.check_url("http://127.0.0.1:8080/v1/models/x").is_err());
        assert!(g.check_url("https://example.com/api/v1?x=1").is_ok());
        assert!(g.check_url("https://example.com.evil.net/api/").is_err());
        assert!(g.check_url("https://example.com@evil.net/api/x").is_err());
        assert!(g.check_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn urls_are_checked_as_they_will_be_requested() {
        let g = grant(&[]);
        for sneaky in [
            "https://example.com/api/../admin",
            "https://example.com/api/%2e%2e/admin",
            "https://example.com/api/.%2E/admin",
            "https://user:pw@example.com/api/x",
            "https://example.com\\@evil.net/api/x",
            "https://example.com:8443/api/x",
        ] {
            assert!(g.check_url(sneaky).is_err(), "{sneaky}");
        }
        for (equivalent, sent) in [
            ("https://EXAMPLE.com/api/x", "https://example.com/api/x"),
            ("https://example.com:443/api/x", "https://example.com/api/x"),
            ("https://example.com./api/./x#frag", "https://example.com/api/x"),
        ] {
            assert_eq!(g.check_url(equivalent).as_deref(), Ok(sent), "{equivalent}");
        }
        let v6 = CapabilityGrant::new(
            &Capabilities { http: vec!["http://[::1]:8080/v1/*".into()], ..caps() },
            &Capabilities { http: vec!["http://[::1]:8080/v1/*".into()], ..caps() },
            &BTreeMap::new(),
        );
        assert!(v6.check_url("http://[0:0::1]:8080/v1/models").is_ok());
        assert!(v6.check_url("http://[::2]:8080/v1/models").is_err());
    }

    #[test]
    fn headers_that_steer_the_request_are_the_hosts() {
        let g = grant(&[]);
        for name in ["Host", "host", "Content-Length", "Transfer-Encoding"] {
            assert!(g.check_header(name).is_err(), "{name}");
        }
        assert!(g.check_header("Authorization").is_ok());
    }

    #[test]
    fn a_pattern_with_an_unset_option_allows_nothing() {
        let g = grant(&[]);
        assert!(g.check_url("/v1/models").is_err());
    }

    #[test]
    fn a_wildcard_host_is_never_allowed() {
        assert!(!url_matches("https://api.openai.com*", "https://api.openai.com.evil.net/"));
    }
}
