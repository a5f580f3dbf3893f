//! Log lines written together, once per turn of a worker's event loop.
//!
//! A `write(2)` per log line is a fixed cost of every request (a system call, and on a file a
//! page of the kernel's cache touched per call): a few µs, as much as a third of `/livez`.
//! [`BatchedLines`] gathers the lines a worker thread writes while it serves the requests
//! that are ready, and writes them with one call when those requests are done: a task of that
//! thread's event loop ([`write_lines_per_turn`]) runs after the tasks that were already
//! ready, so under load one call carries the lines of every request served in that turn, and
//! when idle a line is written as soon as its request's task yields (µs, not a timer).
//!
//! What is never held: a line of a thread without that task (start-up, shutdown, other
//! runtimes) is written at once; more than [`MAX_PENDING`] bytes are written at once; the
//! task's end (its worker stopping) and the thread's end write what is pending. What a
//! crash can lose is the lines of the turn in progress (nginx's `access_log … buffer=` holds
//! lines for up to its `flush` time instead).

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tracing_subscriber::fmt::MakeWriter;

/// Where a batch goes (stdout in the service, a buffer in tests).
type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Pending lines beyond this many bytes are written at once, not at the turn's end.
const MAX_PENDING: usize = 64 * 1024;

/// A [`MakeWriter`] whose lines are written once per turn of the writing thread's event loop
/// (see the module docs).
#[derive(Clone)]
pub struct BatchedLines {
    sink: Sink,
}

impl BatchedLines {
    /// Batches written to `sink`.
    pub fn new(sink: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
        }
    }

    /// Batches written to the process's standard output (errors are ignored, as
    /// tracing-subscriber ignores them).
    pub fn stdout() -> Self {
        Self::new(|bytes| {
            let _ = io::stdout().lock().write_all(bytes);
        })
    }
}

impl std::fmt::Debug for BatchedLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchedLines")
    }
}

impl<'a> MakeWriter<'a> for BatchedLines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { sink: &self.sink }
    }
}

/// One line's writer: queues the line when its thread writes per turn, writes it otherwise.
pub struct LineWriter<'a> {
    sink: &'a Sink,
}

impl std::fmt::Debug for LineWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineWriter")
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let queued = PENDING
            .try_with(|pending| match pending.try_borrow_mut() {
                Ok(mut pending) => pending.queue(self.sink, line),
                Err(_) => false,
            })
            .unwrap_or(false);
        if !queued {
            (self.sink)(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts this thread's writer task, once: from then on the lines this thread writes are
/// written at the end of each turn of its event loop. Must run inside a
/// [`LocalSet`](tokio::task::LocalSet) (an actix worker's app factory does).
pub fn write_lines_per_turn() {
    let start = PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        let start = matches!(pending.writer, Writer::None);
        if start {
            pending.writer = Writer::Starting;
        }
        start
    });
    if start {
        tokio::task::spawn_local(TurnWriter);
    }
}

/// This thread's pending lines.
struct Pending {
    bytes: Vec<u8>,
    /// The sink `bytes` go to.
    sink: Option<Sink>,
    writer: Writer,
}

/// This thread's writer task.
enum Writer {
    /// None: lines are written at once.
    None,
    /// Spawned, not polled yet: lines are written at once.
    Starting,
    /// Waiting for lines.
    Waiting(Waker),
}

thread_local! {
    static PENDING: RefCell<Pending> = const {
        RefCell::new(Pending { bytes: Vec::new(), sink: None, writer: Writer::None })
    };
}

impl Pending {
    /// Queues `line` for `sink`; false when this thread writes at once.
    fn queue(&mut self, sink: &Sink, line: &[u8]) -> bool {
        let Writer::Waiting(waker) = &self.writer else {
            return false;
        };
        if self.bytes.is_empty() {
            waker.wake_by_ref();
        }
        if !self.sink.as_ref().is_some_and(|s| Arc::ptr_eq(s, sink)) {
            self.write();
            self.sink = Some(sink.clone());
        }
        self.bytes.extend_from_slice(line);
        if self.bytes.len() > MAX_PENDING {
            self.write();
        }
        true
    }

    /// Writes what is pending.
    fn write(&mut self) {
        if let Some(sink) = &self.sink
            && !self.bytes.is_empty()
        {
            sink(&self.bytes);
        }
        self.bytes.clear();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.write();
    }
}

/// Writes the pending lines each time it is woken; woken by a turn's first line.
struct TurnWriter;

impl Future for TurnWriter {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            pending.write();
            match &pending.writer {
                Writer::Waiting(waker) if waker.will_wake(cx.waker()) => {}
                _ => pending.writer = Writer::Waiting(cx.waker().clone()),
            }
        });
        Poll::Pending
    }
}

impl Drop for TurnWriter {
    fn drop(&mut self) {
        let _ = PENDING.try_with(|pending| {
            if let Ok(mut pending) = pending.try_borrow_mut() {
                pending.write();
                pending.writer = Writer::None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps each write it is given, separately.
    fn recording() -> (BatchedLines, Arc<Mutex<Vec<String>>>) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let kept = writes.clone();
        let lines = BatchedLines::new(move |bytes| {
            kept.lock()
                .unwrap()
                .push(String::from_utf8(bytes.to_vec()).unwrap())
        });
        (lines, writes)
    }

    fn line(lines: &BatchedLines, text: &str) {
        lines.make_writer().write_all(text.as_bytes()).unwrap();
    }

    fn written(writes: &Mutex<Vec<String>>) -> Vec<String> {
        writes.lock().unwrap().clone()
    }

    /// The writer task's first poll: from then on this thread writes per turn.
    async fn start_writing_per_turn() {
        write_lines_per_turn();
        tokio::task::yield_now().await;
    }

    /// Runs `test` as a worker's task: on a `LocalSet` whose writer task has started.
    async fn on_a_worker(test: impl Future<Output = ()>) {
        tokio::task::LocalSet::new()
            .run_until(async {
                start_writing_per_turn().await;
                test.await
            })
            .await;
    }

    #[tokio::test]
    async fn the_lines_of_one_turn_are_written_together_once_its_ready_tasks_are_done() {
        let (lines, writes) = recording();
        on_a_worker(async {
            // A request ready in the same turn, and one that becomes ready after the turn's
            // first line (its line waits for the next turn).
            let other = lines.clone();
            tokio::task::spawn_local(async move { line(&other, "two\n") });
            line(&lines, "one\n");
            let late = lines.clone();
            tokio::task::spawn_local(async move { line(&late, "next turn\n") });
            line(&lines, "three\n");
            assert!(written(&writes).is_empty(), "held until the turn's end");
            tokio::task::yield_now().await;
            assert_eq!(written(&writes), ["one\nthree\ntwo\n", "next turn\n"]);
        })
        .await;
    }

    #[test]
    fn a_thread_without_the_writer_task_writes_each_line_at_once() {
        let (lines, writes) = recording();
        line(&lines, "start-up\n");
        line(&lines, "again\n");
        assert_eq!(written(&writes), ["start-up\n", "again\n"]);
    }

    #[test]
    fn lines_pending_when_the_worker_stops_are_written() {
        let (lines, writes) = recording();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            start_writing_per_turn().await;
            line(&lines, "last words\n");
        });
        assert!(written(&writes).is_empty(), "the turn has not ended");
        drop(local);
        assert_eq!(written(&writes), ["last words\n"]);
        line(&lines, "after\n");
        assert_eq!(written(&writes)[1], "after\n", "at once again");
    }

    #[tokio::test]
    async fn more_than_max_pending_bytes_are_written_at_once() {
        let (lines, writes) = recording();
        on_a_worker(async {
            let long = format!("{}\n", "x".repeat(MAX_PENDING / 3));
            line(&lines, &long);
            line(&lines, &long);
            assert!(written(&writes).is_empty());
            line(&lines, &long);
            assert_eq!(written(&writes), [long.repeat(3)]);
        })
        .await;
    }

    #[tokio::test]
    async fn a_line_for_another_sink_writes_the_pending_ones_first() {
        let (first, first_writes) = recording();
        let (second, second_writes) = recording();
        on_a_worker(async {
            line(&first, "a\n");
            line(&second, "b\n");
            assert_eq!(written(&first_writes), ["a\n"]);
            tokio::task::yield_now().await;
            assert_eq!(written(&second_writes), ["b\n"]);
        })
        .await;
    }
}
