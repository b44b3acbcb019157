//! Unit tests of the configuration (a child module of config.rs, kept apart for its length).
use super::*;

fn cli(s: &[&str]) -> Vec<(String, Vec<String>)> {
    split_cli(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        .unwrap()
        .1
}

#[test]
fn file_then_cli_override() {
    let dir = std::env::temp_dir().join(format!("tandem-conf-{}", std::process::id()));
    std::fs::write(
        &dir,
        "# comment\nport 7000\nmaxmemory 1mb\nrequirepass \"a b\"\nhash-max-listpack-entries 7\n",
    )
    .unwrap();
    let c = Config::load(Some(dir.to_str().unwrap()), &cli(&["--port", "7001"])).unwrap();
    let s = c.settings();
    assert_eq!(
        (s.port, s.maxmemory, s.requirepass.as_deref()),
        (7001, 1024 * 1024, Some("a b"))
    );
    assert_eq!(c.get("hash-max-listpack-entries"), "7");
    std::fs::write(&dir, "port 7000\nbogus 1\n").unwrap();
    let err = Config::load(Some(dir.to_str().unwrap()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("bogus"), "{err}");
    std::fs::remove_file(&dir).ok();
}

#[test]
fn bad_values_are_named() {
    let err = Config::load(None, &cli(&["--port", "abc"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--port abc") && err.contains("integer"),
        "{err}"
    );
    assert!(Config::load(None, &cli(&["--port", "70000"])).is_err());
    assert!(Config::load(None, &cli(&["--maxmemory", "12zb"])).is_err());
}

#[test]
fn config_set_rules() {
    let mut c = Config::default();
    c.set_many(&[("maxmemory".into(), "2gb".into())]).unwrap();
    assert_eq!(c.get("maxmemory"), (2u64 << 30).to_string());
    let e = c.set_many(&[("databases".into(), "3".into())]).unwrap_err();
    assert!(e.contains("can't set immutable config"), "{e}");
    let e = c
        .set_many(&[("hz".into(), "20".into()), ("nope".into(), "1".into())])
        .unwrap_err();
    assert!(e.contains("Unknown option"), "{e}");
    assert_eq!(c.get("hz"), "10", "all or nothing");
    let got = c.get_matching(&[b"max*"]);
    assert!(
        got.iter().any(|(k, _)| *k == "maxclients")
            && got.iter().all(|(k, _)| k.starts_with("max"))
    );
}

#[test]
fn out_of_range_list_sizes_and_old_names_read_as_valkey() {
    let mut c = Config::default();
    for (given, used) in [("0", 1), ("-6", -5), ("-2", -2), ("7", 7)] {
        c.set_many(&[("list-max-listpack-size".into(), given.into())])
            .unwrap();
        assert_eq!(c.settings().limits.list_size, used, "{given}");
    }
    // An old name sets and shows the listpack value.
    c.set_many(&[("list-max-ziplist-size".into(), "16".into())])
        .unwrap();
    let got = c.get_matching(&[b"list-max-*-size"]);
    assert!(got.iter().all(|(_, v)| v == "16"), "{got:?}");
}

#[test]
fn defaults_are_normalised() {
    let s = Config::default().settings();
    assert_eq!(
        (s.proto_max_bulk_len, s.client_query_buffer_limit),
        (512 << 20, 1 << 30)
    );
    assert_eq!(Config::default().get("proto-max-bulk-len"), "536870912");
    assert!(Config::no_effect_directives().any(|d| d == "activerehashing"));
}

#[test]
fn cpulists() {
    assert_eq!(
        parse_cpulist("0-3,8-12:2,20"),
        Some(vec![0, 1, 2, 3, 8, 10, 12, 20])
    );
    assert_eq!(parse_cpulist(""), Some(vec![]));
    assert_eq!(parse_cpulist("3-1"), None);
    assert!(Config::load(None, &cli(&["--server-cpulist", "x"])).is_err());
}

#[test]
fn memory_units() {
    assert_eq!(parse_memory("1k"), Some(1000));
    assert_eq!(parse_memory("1KB"), Some(1024));
    assert_eq!(parse_memory("3gb"), Some(3 << 30));
    assert_eq!(parse_memory("x"), None);
}
