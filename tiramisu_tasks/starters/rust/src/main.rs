//! @NAME@: a Tiramisu app in Rust (made by `tiramisu init`).
//!
//! Each request runs this program once, as CGI (WAGI): the request comes in as
//! environment variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*), the
//! body on stdin; print the response headers, a blank line, then the body.
//! Build: `tiramisu build .`   Deploy: `tiramisu deploy . --host HOST`
use std::env;

fn main() {
    // PATH_INFO is the part of the path after /@NAME@
    let path = env::var("PATH_INFO").unwrap_or_default();
    let path = if path.is_empty() { "/".to_string() } else { path };
    print!("Content-Type: text/plain; charset=utf-8\n\n");
    println!("Hello from @NAME@! {}", path);
}
