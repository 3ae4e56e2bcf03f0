//! Driver core configuration: checks of the system description's values, and in-place start-up
//! in a static (a PD stack is far smaller than the driver).

mod driver_fakes;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;

use driver_fakes::*;
use vmbus_driver::driver::{
    ClientConfig, ConfigError, ConnectionState, Driver, DriverConfig, MAX_CLIENTS,
};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, RelId, VpIndex};
use vmbus_driver::version::Version;

const CLASSES: [Guid; 1] = [NET];

fn client(id: u16, window_pages: usize, max_channels: usize) -> ClientConfig<'static> {
    ClientConfig {
        id: ClientId(id),
        window_pages,
        max_channels,
        classes: &CLASSES,
        instance: None,
        power: false,
        low_latency: false,
    }
}

fn config<'a>(clients: &'a [ClientConfig<'a>], reply_timeout: u64) -> DriverConfig<'a> {
    DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout,
        clients,
    }
}

#[test]
fn configurations_that_do_not_fit_are_refused_with_the_reason() {
    let many: Vec<_> = (0..=MAX_CLIENTS as u16).map(|i| client(i, 8, 2)).collect();
    let nine_classes = [NET; 9];
    let cases: Vec<(Vec<ClientConfig<'_>>, u64, ConfigError)> = vec![
        (many, 10, ConfigError::TooManyClients(MAX_CLIENTS + 1)),
        (
            vec![client(1, 8, 2), client(1, 8, 2)],
            10,
            ConfigError::DuplicateClient(ClientId(1)),
        ),
        (
            vec![client(1, 8, 0)],
            10,
            ConfigError::BadMaxChannels(ClientId(1)),
        ),
        (
            vec![client(1, 1024, 129)],
            10,
            ConfigError::BadMaxChannels(ClientId(1)),
        ),
        (
            vec![client(1, 7, 2)],
            10,
            ConfigError::WindowTooSmall(ClientId(1)),
        ),
        (
            vec![ClientConfig {
                classes: &nine_classes,
                ..client(1, 8, 2)
            }],
            10,
            ConfigError::TooManyClasses(ClientId(1)),
        ),
        (vec![client(1, 8, 2)], 0, ConfigError::ZeroTimeout),
    ];
    for (clients, timeout, expected) in cases {
        let err = Driver::try_new(&config(&clients, timeout)).unwrap_err();
        assert_eq!(err, expected);
        assert!(!err.to_string().is_empty());
    }
    // The largest valid shape.
    let full: Vec<_> = (0..MAX_CLIENTS as u16)
        .map(|i| client(i, 512, 128))
        .collect();
    assert!(Driver::try_new(&config(&full, 1)).is_ok());
}

static DRIVER: Mutex<Driver> = Mutex::new(Driver::EMPTY);

#[test]
fn driver_lives_in_a_static_and_initialises_in_place() {
    let clients = [client(1, 64, 4)];
    let mut d = DRIVER.lock().unwrap();
    // A refused configuration changes nothing.
    assert!(d.init(&config(&clients, 0)).is_err());
    d.init(&config(&clients, 10)).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut hv = FakeHv::new(log.clone());
    hv.offers = vec![offer(3, NET, 1, 0)];
    let mut k = FakeKernel::new(log, 16, &[ClientId(1)]);
    d.start(&mut hv, 1);
    while hv.busy() {
        d.on_interrupt(&mut hv, &mut k, 1);
    }
    assert_eq!(d.connection().state, ConnectionState::Connected);
    assert!(d.channel(RelId(3)).is_some());
    // init again: back to the fresh state.
    d.init(&config(&clients, 10)).unwrap();
    assert_eq!(d.connection().state, ConnectionState::Disconnected);
    assert_eq!(d.channels().count(), 0);
    assert_eq!(d.stats().offers, 0);
}
