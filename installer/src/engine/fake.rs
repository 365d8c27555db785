//! A fake engine for unit tests of the install's decisions: it answers from
//! memory and records what it was asked to do.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::process::Output;

use super::{Container, Engine, EngineError, Store};

/// An engine in memory.
#[derive(Debug, Default)]
pub struct FakeEngine {
    /// `info` fails with this, when set.
    pub info_error: Option<String>,
    /// Image IDs with their layer diff IDs.
    pub images: RefCell<BTreeMap<String, Vec<String>>>,
    /// Name to image ID.
    pub tags: RefCell<BTreeMap<String, String>>,
    /// Each load's bytes.
    pub loads: RefCell<Vec<Vec<u8>>>,
    /// What `containers` answers, one answer per call (the last repeats).
    pub containers: RefCell<Vec<Vec<Container>>>,
    /// Each compose call's arguments.
    pub compose_calls: RefCell<Vec<Vec<String>>>,
    /// What a registry would serve: reference to (image ID, diff IDs).
    pub registry: RefCell<BTreeMap<String, (String, Vec<String>)>>,
    /// Each pull's reference.
    pub pulls: RefCell<Vec<String>>,
}

impl Engine for FakeEngine {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn info(&self) -> Result<(), EngineError> {
        match &self.info_error {
            Some(e) => Err(EngineError::Failed {
                cmd: "fake info".into(),
                status: "exit status: 1".into(),
                stderr: e.clone(),
            }),
            None => Ok(()),
        }
    }
    fn store(&self) -> Result<Store, EngineError> {
        Ok(Store::Classic)
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    fn image_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        Ok(self.tags.borrow().get(name).cloned())
    }
    fn images(&self) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
        Ok(self.images.borrow().clone())
    }
    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), EngineError> {
        let mut buf = Vec::new();
        write(&mut buf).map_err(|e| EngineError::Stream {
            cmd: "fake load".into(),
            source: e,
        })?;
        self.loads.borrow_mut().push(buf);
        Ok(())
    }
    fn tag(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.tags.borrow_mut().insert(name.into(), id.into());
        Ok(())
    }
    fn pull(&self, reference: &str) -> Result<(), EngineError> {
        self.pulls.borrow_mut().push(reference.to_owned());
        let Some((id, diff_ids)) = self.registry.borrow().get(reference).cloned() else {
            return Err(EngineError::Failed {
                cmd: format!("fake pull {reference}"),
                status: "exit status: 1".into(),
                stderr: "manifest unknown".into(),
            });
        };
        self.images.borrow_mut().insert(id.clone(), diff_ids);
        self.tags.borrow_mut().insert(reference.to_owned(), id);
        Ok(())
    }
    fn skips_present_layers(&self) -> bool {
        true
    }
    fn compose(
        &self,
        _dir: &Path,
        project: &str,
        files: &[String],
        args: &[&str],
    ) -> Result<Output, EngineError> {
        let mut call = vec![project.to_owned()];
        call.extend(files.iter().cloned());
        call.extend(args.iter().map(|a| a.to_string()));
        self.compose_calls.borrow_mut().push(call);
        Err(EngineError::Failed {
            cmd: "fake compose".into(),
            status: "exit status: 1".into(),
            stderr: "the fake engine runs no compose".into(),
        })
    }
    fn containers(&self, _project: &str) -> Result<Vec<Container>, EngineError> {
        let mut answers = self.containers.borrow_mut();
        Ok(if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers.first().cloned().unwrap_or_default()
        })
    }
    fn logs(&self, _container: &str, _n: usize) -> String {
        String::new()
    }
    fn compose_name(&self) -> String {
        "fake compose".into()
    }
}
