//! What the operator reads while the broker is away: one line when Kafka becomes
//! unavailable, one when it is back (with how long and how many errors), and in between a
//! summary at most every [`SUMMARY_EVERY`].
//!
//! librdkafka reports every failed connection attempt twice, once through its log callback
//! and once through its error callback, and retries several times a second: left to the
//! default client context (which logs both under the `librdkafka` and `rdkafka::client`
//! targets) an outage of a minute wrote hundreds of identical lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// How often a continuing outage is summarised.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// The broker's availability as the producer sees it, and the log lines it is worth.
#[derive(Debug, Default)]
pub struct BrokerLog {
    /// Mirrors `state.outage.is_some()`, so the delivery path checks it without locking.
    down: AtomicBool,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    outage: Option<Outage>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    errors: u64,
    /// Errors since the last summary line.
    unreported: u64,
    last_line: Instant,
    last_reason: String,
}

impl BrokerLog {
    /// A connection-level failure: the first one of an outage is logged, later ones counted.
    pub fn unavailable(&self, brokers: &str, reason: &str) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("broker log lock");
        match &mut state.outage {
            None => {
                tracing::warn!(%brokers, %reason, "Kafka unavailable");
                state.outage = Some(Outage {
                    since: now,
                    errors: 1,
                    unreported: 0,
                    last_line: now,
                    last_reason: reason.to_owned(),
                });
                self.down.store(true, Ordering::Release);
            }
            Some(outage) => {
                outage.errors += 1;
                outage.unreported += 1;
                reason.clone_into(&mut outage.last_reason);
                if now.duration_since(outage.last_line) >= SUMMARY_EVERY {
                    tracing::warn!(
                        %brokers,
                        for_s = now.duration_since(outage.since).as_secs(),
                        errors = outage.unreported,
                        last_error = %outage.last_reason,
                        "Kafka still unavailable"
                    );
                    outage.unreported = 0;
                    outage.last_line = now;
                }
            }
        }
    }

    /// The broker took a message: ends an outage, if one was logged.
    pub fn available(&self, brokers: &str) {
        if !self.down.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().expect("broker log lock");
        if let Some(outage) = state.outage.take() {
            self.down.store(false, Ordering::Release);
            tracing::info!(
                %brokers,
                after_s = outage.since.elapsed().as_secs(),
                errors = outage.errors,
                "Kafka back"
            );
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }
}

/// Errors that mean "the broker cannot be reached" rather than "the broker said no".
pub fn is_connectivity(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::BrokerDestroy
        )
    )
}

/// The producer's client context: librdkafka's errors and log lines go through a
/// [`BrokerLog`] instead of straight to the log.
pub struct ProducerLogContext {
    pub log: std::sync::Arc<BrokerLog>,
    pub brokers: String,
}

impl ClientContext for ProducerLogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            // Connection failures arrive through `error` as well; during an outage each is
            // counted there, so its log twin is kept for debugging only.
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
                if self.log.is_down() || facility == "FAIL" =>
            {
                tracing::debug!(target: "librdkafka", facility, message)
            }
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, message)
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, message),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_connectivity(error.rdkafka_error_code()) {
            self.log.unavailable(&self.brokers, reason);
        } else {
            tracing::error!(target: "librdkafka", %error, reason, "Kafka client error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_one_state_change_each_way_however_many_errors_it_has() {
        let log = BrokerLog::default();
        assert!(!log.is_down());
        for _ in 0..500 {
            log.unavailable("b:9092", "Connection refused");
        }
        assert!(log.is_down());
        {
            let state = log.state.lock().unwrap();
            let outage = state.outage.as_ref().unwrap();
            assert_eq!(outage.errors, 500);
            // Within the first summary period nothing was logged after the first line.
            assert_eq!(outage.unreported, 499);
        }
        log.available("b:9092");
        assert!(!log.is_down());
        assert!(log.state.lock().unwrap().outage.is_none());
        // A second "available" with no outage logs nothing and changes nothing.
        log.available("b:9092");
        assert!(!log.is_down());
    }

    #[test]
    fn broker_refusals_are_not_taken_for_an_outage() {
        assert!(is_connectivity(Some(RDKafkaErrorCode::AllBrokersDown)));
        assert!(is_connectivity(Some(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!is_connectivity(Some(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!is_connectivity(Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!is_connectivity(None));
    }
}
