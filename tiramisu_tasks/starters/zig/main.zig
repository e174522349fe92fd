//! @NAME@: a Tiramisu app in Zig (made by `tiramisu init`).
//!
//! Each request runs this program once, as CGI (WAGI): the request comes in as
//! environment variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*), the
//! body on stdin; print the response headers, a blank line, then the body.
//! Build: `tiramisu build .`   Deploy: `tiramisu deploy . --host HOST`
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    const path = init.environ_map.get("PATH_INFO") orelse ""; // the part after /@NAME@
    var buf: [1024]u8 = undefined;
    var stdout = std.Io.File.stdout().writer(init.io, &buf);
    const out = &stdout.interface;
    try out.print("Content-Type: text/plain; charset=utf-8\n\n", .{});
    try out.print("Hello from @NAME@! {s}\n", .{if (path.len == 0) "/" else path});
    try out.flush();
}
