// The integration suite runs on SQLite always, and on PostgreSQL as well when
// CALLHUB_TEST_DATABASE_URL names a server to make test databases on.
// The web client (`web/public`) is embedded in the binary, brotli-compressed, with
// ETags; `CALLHUB_WEB_FROM_DISK=1` at build time serves it from the source tree
// instead, read at each request: for working on the client without rebuilding.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=CALLHUB_TEST_DATABASE_URL");
    if std::env::var("CALLHUB_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }

    println!("cargo::rerun-if-env-changed=CALLHUB_WEB_FROM_DISK");
    let embed = std::env::var_os("CALLHUB_WEB_FROM_DISK").is_none_or(|v| v != "1");
    // memory-serve otherwise prints a cargo warning per file on every build.
    // SAFETY: the build script is single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("MEMORY_SERVE_QUIET", "1") };
    memory_serve::load_directory_with_embed("../../web/public", embed);
}
