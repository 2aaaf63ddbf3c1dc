//! `mcc completions SHELL` (clap_complete) and `mcc man` (clap_mangen): generated from the
//! same clap definitions as the parser, so they never drift from the flags.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, Error};

/// Shells `mcc completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl From<Shell> for clap_complete::Shell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Elvish => clap_complete::Shell::Elvish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
        }
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

/// Prints the completion script of `shell` to stdout.
pub fn completions(shell: Shell) -> Result<(), Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(clap_complete::Shell::from(shell), &mut cmd, "mcc", &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(io("writing the completions"))
}

/// Prints the man page `mcc(1)` to stdout, or with `dir` writes it and one page per
/// subcommand (`mcc-blob(1)`, ...) there and prints their paths.
pub fn man(dir: Option<PathBuf>) -> Result<(), Error> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(io("rendering the man page"))?;
            std::io::stdout()
                .write_all(&out)
                .map_err(io("writing the man page"))
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| Error::File {
                path: dir.clone(),
                source,
            })?;
            clap_mangen::generate_to(cmd, &dir).map_err(|source| Error::File {
                path: dir.clone(),
                source,
            })?;
            let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|source| Error::File {
                    path: dir.clone(),
                    source,
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "1"))
                .collect();
            pages.sort();
            for p in pages {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}
