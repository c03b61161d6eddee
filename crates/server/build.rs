// The integration suite runs on SQLite always, and on PostgreSQL as well when
// CALLHUB_TEST_DATABASE_URL names a server to make test databases on.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=CALLHUB_TEST_DATABASE_URL");
    if std::env::var("CALLHUB_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
