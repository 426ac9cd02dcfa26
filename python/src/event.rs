//! `mmring.Event`: `multiprocessing.Event` over an event file.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::common::{Local, Target, timeout_arg, wait_for};

/// A flag that processes wait on, as ``multiprocessing.Event``.
///
/// ``Event("go")`` creates the file or opens the one already there (an
/// existing event keeps its state). ``Event.open("go")`` opens only.
#[pyclass(module = "mmring", frozen)]
pub struct Event {
    local: Local<mmring::Event>,
}

fn open(path: &std::path::Path) -> Result<mmring::Event, mmring::OpenError> {
    mmring::Event::open(path)
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (name=None))]
    fn new(name: Option<&str>) -> PyResult<Self> {
        let target = Target::new(name, "event")?;
        let handle =
            mmring::Event::open_or_create(&target.path).map_err(crate::common::open_error)?;
        Ok(Self {
            local: Local::opened(target, handle, open),
        })
    }

    /// Opens an existing event; ``FileNotFoundError`` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, pyo3::types::PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let handle = open(&target.path).map_err(crate::common::open_error)?;
        Ok(Self {
            local: Local::opened(target, handle, open),
        })
    }

    /// The event at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open),
        })
    }

    /// Sets the flag and wakes every waiter.
    fn set(&self) -> PyResult<()> {
        self.local.get("Event")?.set();
        Ok(())
    }

    /// Clears the flag.
    fn clear(&self) -> PyResult<()> {
        self.local.get("Event")?.clear();
        Ok(())
    }

    /// Whether the flag is set.
    fn is_set(&self) -> PyResult<bool> {
        Ok(self.local.get("Event")?.is_set())
    }

    /// Waits until the flag is set, or ``timeout`` seconds; returns the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let event = self.local.get("Event")?;
        if event.is_set() {
            return Ok(true);
        }
        let event = &*event;
        Ok(wait_for(py, timeout, |slice| event.wait_timeout(slice).then_some(()))?.is_some())
    }

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let attach = slf.get_type().getattr("_attach")?;
        Ok((
            attach,
            PyTuple::new(py, [slf.get().local.target.shared_path()])?,
        ))
    }

    fn __repr__(&self) -> String {
        format!("mmring.Event({:?})", self.local.target.name)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Event>()
}
