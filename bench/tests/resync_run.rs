//! Short resync scenarios against real tandem-server processes: the report says what happened (one full
//! sync for a new replica, none for a killed link), the data ended equal, and the files are written.

mod common;
use common::server_bin;
use tandem_bench::resync::{self, ResyncArgs, Scenario};

fn args(scenario: Scenario, out: &str, load_rate: u64) -> ResyncArgs {
    ResyncArgs {
        scenario,
        server_bin: server_bin(),
        compare: None,
        keys: 20_000,
        value_size: 50,
        random_values: false,
        hash_fields: 0,
        load_rate,
        primary_shards: 2,
        replica_shards: 1,
        rounds: 1,
        timeout: 120,
        cut_seconds: 0.0,
        out_dir: std::env::temp_dir().join(format!("tandem-resync-{out}-{}", std::process::id())),
    }
}

fn report(a: &ResyncArgs, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(a.out_dir.join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn new_replica_under_load_reports_one_full_sync_and_equal_data() {
    let a = args(Scenario::NewReplica, "new", 2000);
    resync::run(a.clone()).unwrap();
    let j = report(&a, "newreplica.json");
    let run = &j["runs"][0][0];
    assert_eq!(run["full_syncs"], 1);
    assert_eq!(run["data_equal"], true);
    assert_eq!(run["keys"], 20_000);
    let up = run["caught_up_s"].as_f64().unwrap();
    assert!(up > 0.0 && up >= run["link_up_s"].as_f64().unwrap());
    assert!(
        !run["per_second"].as_array().unwrap().is_empty(),
        "load ran"
    );
    assert_eq!(run["load_errors"], 0);
    let svg = std::fs::read_to_string(a.out_dir.join("newreplica-tandem-0.svg")).unwrap();
    assert!(svg.contains(">sync<"));
    std::fs::remove_dir_all(&a.out_dir).ok();
}

#[test]
fn partial_scenario_after_a_timed_cut_recovers_without_a_full_sync() {
    let mut a = args(Scenario::Partial, "partial-cut", 2000);
    a.cut_seconds = 1.0;
    resync::run(a.clone()).unwrap();
    let run = &report(&a, "partial.json")["runs"][0][0];
    assert_eq!(run["full_syncs"], 0);
    assert_eq!(run["partial_syncs"], 1);
    assert_eq!(run["data_equal"], true);
    assert_eq!(run["phases"][0][0], "link cut");
    let cut = run["phases"][0][2].as_f64().unwrap() - run["phases"][0][1].as_f64().unwrap();
    assert!(cut >= 1.0, "{cut}");
    std::fs::remove_dir_all(&a.out_dir).ok();
}

#[test]
fn partial_scenario_recovers_without_a_full_sync() {
    let a = args(Scenario::Partial, "partial", 0);
    resync::run(a.clone()).unwrap();
    let run = &report(&a, "partial.json")["runs"][0][0];
    assert_eq!(run["full_syncs"], 0);
    assert_eq!(run["partial_syncs"], 1);
    assert_eq!(run["data_equal"], true);
    std::fs::remove_dir_all(&a.out_dir).ok();
}

#[test]
fn rejoin_old_primary_catches_up_and_writes_resume_on_the_promoted_replica() {
    let a = args(Scenario::RejoinOldPrimary, "rejoin", 0);
    resync::run(a.clone()).unwrap();
    let run = &report(&a, "rejoinoldprimary.json")["runs"][0][0];
    assert_eq!(
        run["data_equal"], true,
        "the restarted primary holds the promoted replica's data"
    );
    assert_eq!(
        run["full_syncs"], 1,
        "the empty old primary syncs fully from the new one"
    );
    let seconds = run["per_second"].as_array().unwrap();
    let last = seconds.last().unwrap();
    assert!(
        last["ops"].as_u64().unwrap() > 0,
        "writes go on after the failover"
    );
    std::fs::remove_dir_all(&a.out_dir).ok();
}
