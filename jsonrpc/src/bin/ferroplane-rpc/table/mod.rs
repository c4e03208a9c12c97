//! The methods `ferroplane-rpc` knows, with rpc.py's argument names (SPDK's
//! python/spdk/cli/*.py argparse definitions), so SPDK users' scripts work.

use serde_json::{Map, Value};

use crate::args::Arg;

/// How a result is printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Print {
    /// Pretty JSON (rpc.py's print_dict).
    Dict,
    /// Pretty JSON, a bare string without quotes (rpc.py's print_json).
    Json,
    /// Nothing (rpc.py prints nothing for these).
    Nothing,
    /// A list's items on one line, space separated (rpc.py's print_array).
    Array,
}

/// What the command does with the parsed params.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Run {
    /// One call of the method.
    Call,
    /// rpc.py's save_config: framework_get_subsystems, then
    /// framework_get_config per subsystem, printed as one config.
    SaveConfig,
    /// rpc.py's load_config: replay a config, stepping through the states.
    LoadConfig,
}

/// A hook that completes the params (rpc.py's per-method computations).
pub type Finish = fn(&mut Map<String, Value>) -> Result<(), String>;

pub struct Method {
    pub name: &'static str,
    pub help: &'static str,
    pub args: &'static [Arg],
    pub print: Print,
    pub run: Run,
    pub finish: Option<Finish>,
}

pub(super) const fn m(
    name: &'static str,
    help: &'static str,
    args: &'static [Arg],
    print: Print,
) -> Method {
    Method {
        name,
        help,
        args,
        print,
        run: Run::Call,
        finish: None,
    }
}

pub(super) const fn mf(
    name: &'static str,
    help: &'static str,
    args: &'static [Arg],
    print: Print,
    f: Finish,
) -> Method {
    Method {
        finish: Some(f),
        ..m(name, help, args, print)
    }
}

mod bdev;
mod bdev_nvme;
mod framework;
mod lvol;
mod nvmf;
mod vhost;

/// Every method, grouped as rpc.py's modules group them.
pub fn all() -> impl Iterator<Item = &'static Method> {
    framework::METHODS
        .iter()
        .chain(bdev::METHODS)
        .chain(bdev_nvme::METHODS)
        .chain(lvol::METHODS)
        .chain(nvmf::METHODS)
        .chain(vhost::METHODS)
}

pub fn find(name: &str) -> Option<&'static Method> {
    all().find(|m| m.name == name)
}
