// A Rust std program (collections, formatting, sorting, float math): a bigger
// WASI module for bench/aot_swap.py. Built with Debian rustc --target wasm32-wasi.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

fn main() {
    let mut m: HashMap<String, u64> = HashMap::new();
    let mut b: BTreeMap<u64, String> = BTreeMap::new();
    for (i, arg) in std::env::args().enumerate() {
        m.insert(arg.clone(), i as u64);
        b.insert(i as u64, arg.to_uppercase());
    }
    let mut v: Vec<f64> = (0..100).map(|x| (x as f64 * 1.7).sin()).collect();
    v.sort_by(|a, c| a.partial_cmp(c).unwrap());
    let mut s = String::new();
    write!(s, "{:?} {:?} {:.3}", m.len(), b.iter().next(), v[3]).unwrap();
    let q = std::env::var("QUERY_STRING").unwrap_or_default();
    let parsed: Vec<(String, String)> = q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let mut it = p.splitn(2, '=');
        (it.next().unwrap().to_string(), it.next().unwrap_or("").to_string())
    }).collect();
    print!("Content-Type: text/plain\n\nhello big {} {:?}\n", s, parsed);
}
