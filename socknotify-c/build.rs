//! Gives the shared library its SONAME, `libsocknotify.so.<major>` (the name programs record
//! and the loader looks for), whatever file name cargo writes (`libsocknotify_c.so`; the
//! install step installs it as `libsocknotify.so.<version>` with the usual symlinks).
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_string());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsocknotify.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
