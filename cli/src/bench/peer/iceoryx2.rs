//! iceoryx2 (the `iceoryx2` feature of the command line): the strongest
//! peer of the SPSC rows, and the only one that, like mmring, crosses a
//! process boundary without the kernel on the data path. Measured between
//! the same two processes as mmring's rows (the parent, and a child forked
//! for each run), through the same workload ([`flow`]) and the same
//! round-trip runner ([`roundtrip`]):
//!
//! * [`throughput`]: publish-subscribe, the child publishing, the parent
//!   receiving by busy polling (`loan_uninit` + `send` against
//!   `receive`), with a subscriber buffer of the ring's capacity;
//! * [`round_trips`]: publish-subscribe ping-pong through two services,
//!   both sides busy polling, with a `u64` or a 64-byte message;
//! * [`event_round_trips`]: event ping-pong (`notify` against a
//!   listener's `timed_wait`/`blocking_wait`, which sleep in the kernel):
//!   the blocking peer of mmring's `push`/`pop`.
//!
//! How a run is set up. The parent makes a node, *creates* the run's
//! services (names unique per process and run: `Session::names`) and its own
//! ports, then forks. The child makes a node of its own, *opens* the
//! services and makes its ports (a real second participant, as two
//! programs would be; it inherits the parent's iceoryx2 objects but never
//! touches them). Its ports connect to the parent's, which exist already;
//! the parent's ports find the child's on their next send or receive
//! (iceoryx2 updates a port's connections then). A round trip's child says
//! hello ([`HELLO`]) once its ports are up, and the parent waits for that
//! before its first ping, so that no ping goes to a subscriber not yet
//! there. The child's setup happens before it raises `READY` (throughput)
//! or during the parent's untimed warm-up (round trips): never in a
//! measured window.
//!
//! Unlike the rest of the harness, the child allocates (iceoryx2 makes its
//! node and ports on the heap): fine for `mmring bench`, whose only thread
//! forks, and for glibc's `malloc`, which is fork-safe; these rows are not
//! in the criterion benches.
//!
//! Cleanup: both sides drop their ports, services and nodes before they
//! exit (the child before its `_exit`), which removes the services'
//! shared memory (`/dev/shm/<prefix>…`) and the nodes' entries under
//! iceoryx2's root directory (`/tmp/iceoryx2/`). iceoryx2 keeps one
//! management segment per prefix in `/dev/shm` for as long as it is used;
//! [`Session`] names every file with a prefix of its own and removes, when
//! dropped, that segment and whatever a failed run left behind with the
//! prefix. The directories
//! `/tmp/iceoryx2/{nodes,services}` themselves stay (iceoryx2 makes them
//! once, for every user of the machine).

use std::fmt::Debug;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iceoryx2::config::Config;
use iceoryx2::port::LoanError;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::{event as event_factory, publish_subscribe};

use crate::bench::runner::control::{Budget, Control, Counted, Sample};
use crate::bench::runner::flow::{self, Broken, Echo, Message, Rx, STOP, Tx};
use crate::bench::runner::procs;
use crate::bench::runner::roundtrip::{self, RoundTrips};
use crate::bench::runner::spin::{self, PATIENCE};

/// The message a round trip's child sends once its ports are up.
pub const HELLO: u64 = u64::MAX - 1;

/// The event ids of an event round trip: pings carry `seq % PINGS`, then
/// the hello and the stop.
const PINGS: usize = 254;
const HELLO_ID: usize = PINGS;
const STOP_ID: usize = PINGS + 1;

/// What a payload of these rows must be for iceoryx2 too.
pub trait Payload: Message + ZeroCopySend + Debug + 'static {}

impl<M: Message + ZeroCopySend + Debug + 'static> Payload for M {}

/// The iceoryx2 side of one comparison: its configuration (a file prefix
/// of its own) and the count that makes every run's service names new.
/// Removes, when dropped, every file with its prefix (iceoryx2's management
/// segment, and whatever a failed run left).
#[derive(Debug)]
pub struct Session {
    config: Config,
    prefix: String,
    runs: AtomicU64,
}

impl Session {
    /// A session with a prefix made of this process's id and a count, so
    /// that two comparisons (or two `mmring` processes) never share a
    /// file.
    ///
    /// # Errors
    ///
    /// If the prefix is not a valid iceoryx2 file name.
    pub fn new() -> io::Result<Self> {
        static SESSIONS: AtomicU64 = AtomicU64::new(0);
        // Relaxed: a counter for unique names; nothing else is published.
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("mmring_bench_{}_{n}_", std::process::id());
        let mut config = Config::default();
        config.global.prefix = FileName::new(prefix.as_bytes()).map_err(other)?;
        // Quiet: a failed run is reported by the harness, not on stderr.
        set_log_level(LogLevel::Fatal);
        Ok(Self {
            config,
            prefix,
            runs: AtomicU64::new(0),
        })
    }

    /// Fresh service names for one run: `mmring-bench/<pid>/<n>/<what>`.
    fn names(&self) -> String {
        // Relaxed: as in `new`.
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        format!("mmring-bench/{}/{n}", std::process::id())
    }

    /// A node of this session (in the parent or in the child).
    fn node(&self) -> io::Result<Node<ipc::Service>> {
        NodeBuilder::new()
            .config(&self.config)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(other)
    }

    /// The files with this session's prefix, in `/dev/shm` and under
    /// iceoryx2's root directory: while the session lives, the global
    /// management segment iceoryx2 keeps per prefix; afterwards, none.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        let root = std::path::PathBuf::from(self.config.global.root_path().to_string());
        files_with_prefix(&self.prefix, root)
    }
}

/// The files whose name starts with `prefix`: in `/dev/shm`, and anywhere
/// under `root`.
fn files_with_prefix(prefix: &str, root: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let shm = std::path::Path::new("/dev/shm");
    let mut found = Vec::new();
    let mut dirs = vec![shm.to_path_buf(), root];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(path);
            } else if dir != shm && entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            }
        }
    }
    found
}

impl Drop for Session {
    fn drop(&mut self) {
        for path in self.files() {
            // Best effort: a file another process removed meanwhile is gone
            // either way.
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn other(e: impl Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {e:?}"))
}

fn name(base: &str, what: &str) -> io::Result<ServiceName> {
    ServiceName::new(&format!("{base}/{what}")).map_err(other)
}

/// Creates (`create == true`, the parent) or opens (the child) the
/// publish-subscribe service `name` for one publisher and one subscriber
/// with a buffer of `buffer` samples, no history, no overflow (a full
/// buffer refuses a sample rather than drop the oldest).
fn pubsub<M: Payload>(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    buffer: usize,
    create: bool,
) -> io::Result<publish_subscribe::PortFactory<ipc::Service, M, ()>> {
    let builder = node
        .service_builder(name)
        .publish_subscribe::<M>()
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(false);
    if create {
        builder.create().map_err(other)
    } else {
        builder.open().map_err(other)
    }
}

/// The sending port: a full subscriber buffer refuses the sample
/// (`DiscardData`: `send` reports no receiver) and the sender tries again.
fn publisher<M: Payload>(
    service: &publish_subscribe::PortFactory<ipc::Service, M, ()>,
) -> io::Result<Publisher<ipc::Service, M, ()>> {
    service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::DiscardData)
        .create()
        .map_err(other)
}

fn subscriber<M: Payload>(
    service: &publish_subscribe::PortFactory<ipc::Service, M, ()>,
    buffer: usize,
) -> io::Result<Subscriber<ipc::Service, M, ()>> {
    service
        .subscriber_builder()
        .buffer_size(buffer)
        .create()
        .map_err(other)
}

/// A publisher as the workload's sending end: `loan_uninit`, write, `send`
/// per message.
struct Pub<M: Payload>(Publisher<ipc::Service, M, ()>);

impl<M: Payload> Tx<M> for Pub<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        let sample = match self.0.loan_uninit() {
            Ok(sample) => sample,
            // Every sample is in the subscriber's buffer: full.
            Err(LoanError::OutOfMemory | LoanError::ExceedsMaxLoans) => return Ok(false),
            Err(_) => return Err(Broken),
        };
        match sample.write_payload(m).send() {
            // Delivered to the one subscriber, or refused (its buffer full).
            Ok(n) => Ok(n > 0),
            Err(_) => Err(Broken),
        }
    }

    /// No batch call: one message.
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        match ms.first() {
            Some(&m) => self.try_one(m).map(usize::from),
            None => Ok(0),
        }
    }
}

/// A subscriber as the workload's receiving end: `receive`, copy the
/// payload out, give the sample back.
struct Sub<M: Payload>(Subscriber<ipc::Service, M, ()>);

impl<M: Payload> Rx<M> for Sub<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        match self.0.receive() {
            Ok(sample) => Ok(sample.map(|s| *s)),
            Err(_) => Err(Broken),
        }
    }

    /// No batch call: one message.
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        if out.is_empty() {
            return Ok(0);
        }
        Ok(match self.try_one()? {
            Some(m) => {
                out[0] = m;
                1
            }
            None => 0,
        })
    }
}

/// The child's side of a publish-subscribe run: its node, the services
/// opened and its ports. Fields drop in order: ports, services, node.
struct PubSubEnd<M: Payload> {
    tx: Pub<M>,
    rx: Option<Sub<M>>,
    _services: Vec<publish_subscribe::PortFactory<ipc::Service, M, ()>>,
    _node: Node<ipc::Service>,
}

/// The child publishes into a service with a buffer of `capacity`
/// samples, the parent receives and is timed, for `budget`.
///
/// # Errors
///
/// Setting up iceoryx2; a message lost, duplicated or out of order; a wait
/// out of patience; the child failing (see [`procs::run`]).
pub fn throughput<M: Payload>(
    session: &Session,
    control: Control<'_>,
    budget: Budget,
    capacity: usize,
) -> io::Result<Sample> {
    let base = session.names();
    let data = name(&base, "data")?;
    let node = session.node()?;
    let service = pubsub::<M>(&node, &data, capacity, true)?;
    let rx = Sub(subscriber(&service, capacity)?);
    let stop = move || control.stop_requested();
    control.reset();
    let mut child = procs::spawn(move || {
        // Before READY: the setup is not measured.
        let Ok(end) = (|| -> io::Result<PubSubEnd<M>> {
            let node = session.node()?;
            let service = pubsub::<M>(&node, &data, capacity, false)?;
            Ok(PubSubEnd {
                tx: Pub(publisher(&service)?),
                rx: None,
                _services: vec![service],
                _node: node,
            })
        })() else {
            return false;
        };
        let mut end = end;
        let ok = control.peer(flow::sender(&mut end.tx, false, stop));
        drop(end);
        ok
    })?;
    let sample = control.lead(
        budget,
        Counted::LeadOnly,
        Some(&mut || child.running()),
        flow::receiver(rx, false),
    )?;
    child.wait()?;
    drop(service);
    drop(node);
    Ok(sample)
}

/// `n` timed publish-subscribe round trips of an `M` through two fresh
/// services (`ping` and `pong`, one sample of buffer each): the parent
/// publishes on one and polls the other, the child echoes, both busy
/// polling with the harness's [`Spin`](crate::bench::runner::spin::Spin).
/// A `gap` as in [`roundtrip::run`].
///
/// # Errors
///
/// As [`roundtrip::run`], and setting up iceoryx2.
pub fn round_trips<M: Payload>(
    session: &Session,
    n: u64,
    gap: Option<Duration>,
) -> io::Result<RoundTrips> {
    let base = session.names();
    let (ping, pong) = (name(&base, "ping")?, name(&base, "pong")?);
    let node = session.node()?;
    let ping_service = pubsub::<M>(&node, &ping, 1, true)?;
    let pong_service = pubsub::<M>(&node, &pong, 1, true)?;
    let mut tx = Pub(publisher(&ping_service)?);
    let mut rx = Sub(subscriber(&pong_service, 1)?);
    let mut end: Option<PubSubEnd<M>> = None;
    let mut greeted = false;
    let trips = roundtrip::run(
        n,
        gap,
        |seq| {
            if !greeted {
                greeted = hello(&mut rx);
                if !greeted {
                    return false;
                }
            }
            flow::ping(&mut tx, &mut rx, seq)
        },
        move || {
            if end.is_none() {
                let made = (|| -> io::Result<PubSubEnd<M>> {
                    let node = session.node()?;
                    let ping_service = pubsub::<M>(&node, &ping, 1, false)?;
                    let pong_service = pubsub::<M>(&node, &pong, 1, false)?;
                    Ok(PubSubEnd {
                        tx: Pub(publisher(&pong_service)?),
                        rx: Some(Sub(subscriber(&ping_service, 1)?)),
                        _services: vec![ping_service, pong_service],
                        _node: node,
                    })
                })();
                let Ok(mut made) = made else {
                    return Echo::Failed;
                };
                if !send(&mut made.tx, M::new(HELLO)) {
                    return Echo::Failed;
                }
                end = Some(made);
            }
            let Some(PubSubEnd {
                tx, rx: Some(rx), ..
            }) = end.as_mut()
            else {
                return Echo::Failed;
            };
            let echo = flow::echo(tx, rx);
            if echo != Echo::Again {
                // Leave nothing behind: the ports and the node go before
                // the child's `_exit`.
                end = None;
            }
            echo
        },
        || {},
    );
    drop((tx, rx, ping_service, pong_service, node));
    trips
}

/// Sends `m` on `tx`, waiting while full.
fn send<M>(tx: &mut impl Tx<M>, m: M) -> bool
where
    M: Copy,
{
    matches!(
        spin::until(
            || tx.try_one(m).map(|ok| ok.then_some(())).transpose(),
            || false
        ),
        Some(Ok(()))
    )
}

/// Waits for the child's hello on `rx`.
fn hello<M: Message>(rx: &mut impl Rx<M>) -> bool {
    matches!(
        spin::until(|| rx.try_one().transpose(), || false),
        Some(Ok(m)) if m.seq() == Some(HELLO)
    )
}

/// Creates or opens the event service `name` for one notifier and one
/// listener, event ids up to [`STOP_ID`], none sent by iceoryx2 itself.
fn event(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    create: bool,
) -> io::Result<event_factory::PortFactory<ipc::Service>> {
    let builder = node
        .service_builder(name)
        .event()
        .max_notifiers(1)
        .max_listeners(1)
        .max_nodes(2)
        .event_id_max_value(STOP_ID)
        .disable_notifier_created_event()
        .disable_notifier_dropped_event()
        .disable_notifier_dead_event();
    if create {
        builder.create().map_err(other)
    } else {
        builder.open().map_err(other)
    }
}

/// Notifies `id`; whether a listener was there to get it.
fn notify(notifier: &Notifier<ipc::Service>, id: usize) -> bool {
    matches!(notifier.notify_with_custom_event_id(EventId::new(id)), Ok(n) if n > 0)
}

/// Waits (up to `patience`, or without end) for one event; its id.
/// Events of one id that come together are counted once: a round trip has
/// one in flight.
fn wait_one(listener: &Listener<ipc::Service>, patience: Option<Duration>) -> Option<usize> {
    let mut got = None;
    let ok = match patience {
        Some(p) => listener.timed_wait(|e| got = Some(e.id.as_value()), p),
        None => listener.blocking_wait(|e| got = Some(e.id.as_value())),
    };
    ok.ok().and(got)
}

/// The child's side of an event round trip. Fields drop in order.
struct EventEnd {
    notifier: Notifier<ipc::Service>,
    listener: Listener<ipc::Service>,
    _services: [event_factory::PortFactory<ipc::Service>; 2],
    _node: Node<ipc::Service>,
}

/// `n` timed event round trips through two fresh event services: the
/// parent notifies on one and waits (`timed_wait`) on the other, the child
/// waits (`blocking_wait`) and notifies back with the same id. Both sides
/// sleep in the kernel while they wait. A `gap` as in [`roundtrip::run`].
///
/// # Errors
///
/// As [`roundtrip::run`], and setting up iceoryx2.
pub fn event_round_trips(
    session: &Session,
    n: u64,
    gap: Option<Duration>,
) -> io::Result<RoundTrips> {
    let base = session.names();
    let (ping, pong) = (name(&base, "ping")?, name(&base, "pong")?);
    let node = session.node()?;
    let ping_service = event(&node, &ping, true)?;
    let pong_service = event(&node, &pong, true)?;
    let notifier = ping_service.notifier_builder().create().map_err(other)?;
    let listener = pong_service.listener_builder().create().map_err(other)?;
    let mut end: Option<EventEnd> = None;
    let mut greeted = false;
    let trips = roundtrip::run(
        n,
        gap,
        |seq| {
            if !greeted {
                greeted = wait_one(&listener, Some(PATIENCE)) == Some(HELLO_ID);
                if !greeted {
                    return false;
                }
            }
            if seq == STOP {
                return notify(&notifier, STOP_ID);
            }
            let id = (seq % PINGS as u64) as usize;
            notify(&notifier, id) && wait_one(&listener, Some(PATIENCE)) == Some(id)
        },
        move || {
            if end.is_none() {
                let made = (|| -> io::Result<EventEnd> {
                    let node = session.node()?;
                    let ping_service = event(&node, &ping, false)?;
                    let pong_service = event(&node, &pong, false)?;
                    Ok(EventEnd {
                        notifier: pong_service.notifier_builder().create().map_err(other)?,
                        listener: ping_service.listener_builder().create().map_err(other)?,
                        _services: [ping_service, pong_service],
                        _node: node,
                    })
                })();
                let Ok(made) = made else {
                    return Echo::Failed;
                };
                if !notify(&made.notifier, HELLO_ID) {
                    return Echo::Failed;
                }
                end = Some(made);
            }
            let Some(e) = end.as_ref() else {
                return Echo::Failed;
            };
            let echo = match wait_one(&e.listener, None) {
                Some(STOP_ID) => Echo::Stop,
                Some(id) if id < PINGS && notify(&e.notifier, id) => Echo::Again,
                _ => Echo::Failed,
            };
            if echo != Echo::Again {
                end = None;
            }
            echo
        },
        || {},
    );
    drop((notifier, listener, ping_service, pong_service, node));
    trips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::control::WORDS;
    use crate::bench::runner::dir::{BenchDir, Stage};
    use crate::bench::runner::flow::Msg64;

    #[test]
    fn every_run_checks_its_messages_and_leaves_no_file() {
        let session = Session::new().expect("session");
        let stage = Stage::new(BenchDir::new().expect("dir"), WORDS).expect("stage");
        let s = throughput::<u64>(&session, stage.control(), Budget::ops(20_000), 1024)
            .expect("u64 throughput");
        assert!(s.ops >= 20_000, "{s:?}");
        let s = throughput::<Msg64>(&session, stage.control(), Budget::ops(20_000), 1024)
            .expect("64 B throughput");
        assert!(s.ops >= 20_000, "{s:?}");
        for gap in [None, Some(Duration::from_micros(100))] {
            let rt = round_trips::<u64>(&session, 200, gap).expect("u64 round trips");
            assert_eq!(rt.nanos.len(), 200);
            let rt = round_trips::<Msg64>(&session, 200, gap).expect("64 B round trips");
            assert_eq!(rt.nanos.len(), 200);
            let rt = event_round_trips(&session, 200, gap).expect("event round trips");
            assert_eq!(rt.nanos.len(), 200);
        }
        // Only the management segment of the prefix is left while the
        // session lives; nothing once it is dropped.
        let left = session.files();
        assert!(left.len() <= 1, "{left:?}");
        let (prefix, root) = (
            session.prefix.clone(),
            std::path::PathBuf::from(session.config.global.root_path().to_string()),
        );
        drop(session);
        assert_eq!(
            files_with_prefix(&prefix, root),
            Vec::<std::path::PathBuf>::new()
        );
    }
}
