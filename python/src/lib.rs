//! `mmring._native`: the Python bindings of mmring.
//!
//! Each object is a `#[pyclass]` over one of the library's handles, kept
//! per process by [`common::Local`]; the bindings own the pickling, the
//! GIL (released around every wait) and the exceptions. The Python
//! package `mmring` (python/mmring) re-exports these classes.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use pyo3::prelude::*;

mod common;
mod dict;
mod event;
mod pipe;
mod queue;
mod sync;
mod value;

/// Removes the file behind `name` (a bare name lives under /dev/shm), as
/// ``os.unlink``: processes that have it open keep using it.
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    mmring::remove(name).or_else(|e| {
        // A pipe is two files, NAME.a and NAME.b: removed together.
        if e.source.kind() == std::io::ErrorKind::NotFound && pipe::remove(name) {
            return Ok(());
        }
        let msg = e.to_string();
        Err(match e.source.kind() {
            std::io::ErrorKind::NotFound => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => {
                pyo3::exceptions::PyPermissionError::new_err(msg)
            }
            _ => pyo3::exceptions::PyOSError::new_err(msg),
        })
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<common::Error>())?;
    m.add("WrongKindError", py.get_type::<common::WrongKindError>())?;
    m.add("ShutDown", common::shutdown_type(py)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(common::_at_exit, m)?)?;
    common::count_forks();
    event::register(m)?;
    value::register(m)?;
    sync::register(m)?;
    queue::register(m)?;
    dict::register(m)?;
    pipe::register(m)?;
    Ok(())
}
