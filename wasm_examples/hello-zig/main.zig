//! Hello in Zig (0.15+ std: std.process.Init gives the environment and I/O).
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    const path = init.environ_map.get("PATH_INFO") orelse "";
    var buf: [1024]u8 = undefined;
    var stdout = std.Io.File.stdout().writer(init.io, &buf);
    const out = &stdout.interface;
    try out.print("Content-Type: text/plain; charset=utf-8\n\n", .{});
    try out.print("Hello from Zig! {s}\n", .{if (path.len == 0) "/" else path});
    try out.flush();
}
