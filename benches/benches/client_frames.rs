//! The client's cost per inbound frame: [`reconnect_client::payload::parse`],
//! the very parser the driver calls on every text frame, on the frames a
//! gateway connection actually carries.
//!
//! ```text
//! cargo bench -p reconnect-benches --bench client_frames
//! ```
//!
//! - `message_create`: the typical dispatch, a MESSAGE_CREATE of some
//!   1.2 KiB shaped like Discord's (ids as strings, ISO 8601 timestamps, an
//!   author and a member object, mentions and an embed);
//! - `heartbeat_ack`: op 11 byte for byte as Discord sends it, the most
//!   frequent frame on an idle connection;
//! - `hello` (op 10, with its `_trace`) and `ready` (a bot shard's READY
//!   with [`READY_GUILDS`] unavailable guilds) as the secondary cases, once
//!   per connection.
//!
//! Each is reported per frame and in bytes per second. The time includes
//! freeing what `parse` returned (a dispatch's data is copied out of the
//! frame), as a driver that handled the frame would. After the
//! measurements the benchmark prints each frame's median from this run.

use std::hint::black_box;

use criterion::{BenchmarkId, Throughput};
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_client::payload::{Inbound, parse};
use reconnect_policy::Dispatch;

/// The benchmark group: ids are `client_frames/parse/<frame>`.
const GROUP: &str = "client_frames";
/// The benchmark function.
const FUNCTION: &str = "parse";

/// Heartbeat ACK exactly as Discord's gateway sends it.
const HEARTBEAT_ACK: &str = r#"{"t":null,"s":null,"op":11,"d":null}"#;

/// Hello as Discord's gateway sends it.
const HELLO: &str = r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["[\"gateway-prd-us-east1-c-7k2j\",{\"micros\":0.0}]"]}}"#;

/// A message in a guild channel, as a bot with the message content intent
/// receives it: it mentions a member and carries one rich embed.
const MESSAGE_CREATE: &str = r#"{"t":"MESSAGE_CREATE","s":1287,"op":0,"d":{"type":0,"tts":false,"timestamp":"2024-05-14T18:23:45.123000+00:00","referenced_message":null,"pinned":false,"nonce":"1239987654321098752","mentions":[{"username":"nelly","public_flags":64,"id":"80351110224678912","global_name":"Nelly","discriminator":"0","avatar_decoration_data":null,"avatar":"8342729096ea3675442027381ff50dfe"}],"mention_roles":[],"mention_everyone":false,"member":{"roles":["41771983423143936"],"premium_since":null,"pending":false,"nick":null,"mute":false,"joined_at":"2021-03-02T11:04:12.345000+00:00","flags":0,"deaf":false,"communication_disabled_until":null,"avatar":null},"id":"1239987655012345678","flags":0,"embeds":[{"type":"rich","title":"Build #4821 passed","description":"All 312 checks passed on `main` in 4m 12s.","color":5763719}],"edited_timestamp":null,"content":"<@80351110224678912> the deploy is green, shipping it now","components":[],"channel_type":0,"channel_id":"381870553235193857","author":{"username":"wumpus","public_flags":0,"id":"53908232506183680","global_name":"Wumpus","discriminator":"0","avatar_decoration_data":null,"avatar":"a_d5efa99b3eeaa7dd43acca82f5692432"},"attachments":[],"guild_id":"290926798626357999"}}"#;

/// Guilds in the READY benchmark: the 1,000 guilds per shard Discord's
/// sharding guidance aims at, every one unavailable until its
/// GUILD_CREATE, as a bot's READY lists them.
const READY_GUILDS: u64 = 1_000;

/// A bot shard's READY with `guilds` unavailable guilds.
fn ready(guilds: u64) -> String {
    let list: Vec<String> = (0..guilds)
        .map(|i| {
            // Plausible, distinct snowflakes.
            let id = 290_926_798_626_357_999_u64 + i * 7_919_083_467_311;
            format!(r#"{{"unavailable":true,"id":"{id}"}}"#)
        })
        .collect();
    format!(
        concat!(
            r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"user_settings":{{}},"#,
            r#""user":{{"verified":true,"username":"reconnect-bot","mfa_enabled":false,"#,
            r#""id":"1105563254938374184","global_name":null,"flags":0,"email":null,"#,
            r#""discriminator":"0","bot":true,"avatar":"4f2c9a7e1b3d5f6a8c0e2b4d6f8a0c1e"}},"#,
            r#""session_type":"normal","session_id":"9b2f4e1c7a3d5b8e0f6a2c4d8e1b3f5a","#,
            r#""resume_gateway_url":"wss://gateway-us-east1-c.discord.gg","#,
            r#""relationships":[],"private_channels":[],"presences":[],"#,
            r#""guilds":[{list}],"guild_join_requests":[],"#,
            r#""geo_ordered_rtc_regions":["newark","us-east","atlanta","us-central","toronto"],"#,
            r#""auth":{{}},"application":{{"id":"1105563254938374184","flags":8953856}},"#,
            r#""_trace":["[\"gateway-prd-us-east1-c-7k2j\",{{\"micros\":40711}}]"],"#,
            r#""shard":[0,16]}}}}"#,
        ),
        list = list.join(","),
    )
}

/// Whether `parsed` is what the frame called `name` should parse to.
fn is_expected(name: &str, parsed: &Inbound) -> bool {
    match name {
        "heartbeat_ack" => matches!(parsed, Inbound::HeartbeatAck),
        "hello" => matches!(parsed, Inbound::Hello { .. }),
        "message_create" => matches!(
            parsed,
            Inbound::Dispatch { event, kind: Dispatch::Other }
                if event.name == "MESSAGE_CREATE" && event.seq.is_some()
        ),
        "ready" => matches!(
            parsed,
            Inbound::Dispatch { kind: Dispatch::Ready { session_id, .. }, .. }
                if !session_id.is_empty()
        ),
        _ => false,
    }
}

fn main() {
    let ready = ready(READY_GUILDS);
    let frames: [(&str, &str); 4] = [
        ("message_create", MESSAGE_CREATE),
        ("heartbeat_ack", HEARTBEAT_ACK),
        ("hello", HELLO),
        ("ready", &ready),
    ];
    for (name, text) in frames {
        match parse(text) {
            Ok(parsed) => assert!(
                is_expected(name, &parsed),
                "the {name} frame parsed to the wrong kind of payload: {parsed:?}"
            ),
            Err(e) => panic!("the {name} frame does not parse: {e}"),
        }
    }

    let mut c = criterion();
    let mut group = c.benchmark_group(GROUP);
    for (name, text) in frames {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new(FUNCTION, name), text, |b, text| {
            b.iter(|| black_box(parse(black_box(text))));
        });
    }
    group.finish();
    if measuring() {
        print_table(&frames);
    }
    c.final_summary();
}

/// Each frame's size, median parse time and throughput in this run.
fn print_table(frames: &[(&str, &str)]) {
    println!();
    println!("{GROUP}/{FUNCTION}: medians of this run");
    println!(
        "{:<15} {:>7} {:>11} {:>10}",
        "frame", "bytes", "ns/frame", "MiB/s"
    );
    for &(name, text) in frames {
        let Some(ns) = median_ns(&format!("{GROUP}/{FUNCTION}/{name}")) else {
            println!("{name:<15} {:>7}   (not measured in this run)", text.len());
            continue;
        };
        println!(
            "{name:<15} {:>7} {ns:>11.1} {:>10.1}",
            text.len(),
            text.len() as f64 / ns * 1e9 / f64::from(1_u32 << 20),
        );
    }
}
