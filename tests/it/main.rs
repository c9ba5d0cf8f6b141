//! Integration tests: nodes in-process on loopback TCP, and the real binary
//! as separate processes. One test crate, so libp2p is linked once.

#![allow(unreachable_pub)] // test helpers are shared between modules

mod support;

mod cli;
mod durability;
mod encrypted;
mod history;
mod http;
mod lab;
mod lan;
mod nat;
mod nat_lab;
mod node;
mod ssh;
mod sync_abuse;
mod terminal;
mod tui;
