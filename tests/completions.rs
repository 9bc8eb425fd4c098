//! Shell completions and manual pages through the binary: the bash script is sourced in a real
//! bash and asked to complete as a Tab press would; the other shells' scripts name the flags;
//! the manual pages render with groff.

mod common;

use std::path::Path;

use common::{command, within};

async fn stdout_of(args: &[&str]) -> String {
    let out = within(30, command(args, &[]).output()).await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash offers for the command line `words` with the cursor in the last word.
fn bash_completes(script: &Path, words: &str) -> Vec<String> {
    // A trailing space starts a new, empty word, as after pressing space then Tab.
    let mut list: Vec<String> = words.split_whitespace().map(str::to_string).collect();
    if words.ends_with(' ') {
        list.push("\"\"".to_string());
    }
    let count = list.len();
    let array = list.join(" ");
    let program = format!(
        "source {}\n\
         COMP_WORDS=({array}); COMP_CWORD={}; COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}\n\
         _underpass underpass \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        count - 1
    );
    let out = std::process::Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(program)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn bash_completes_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("underpass.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"]).await).unwrap();
    let offered = bash_completes(&script, "underpass ser");
    assert!(offered.contains(&"server".to_string()), "{offered:?}");
    let offered = bash_completes(&script, "underpass server --allow-f");
    assert_eq!(offered, ["--allow-forward"]);
    let offered = bash_completes(&script, "underpass http 3000 --pro");
    assert!(offered.contains(&"--proxy".to_string()), "{offered:?}");
    let offered = bash_completes(&script, "underpass completions ");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(offered.contains(&shell.to_string()), "{offered:?}");
    }
}

#[tokio::test]
async fn zsh_fish_and_powershell_scripts_name_every_subcommand() {
    let zsh = stdout_of(&["completions", "zsh"]).await;
    assert!(zsh.starts_with("#compdef underpass"), "{}", &zsh[..80]);
    let fish = stdout_of(&["completions", "fish"]).await;
    assert!(fish.contains("complete -c underpass"));
    let powershell = stdout_of(&["completions", "powershell"]).await;
    assert!(powershell.contains("Register-ArgumentCompleter"));
    for script in [&zsh, &fish, &powershell] {
        for word in [
            "server",
            "forward",
            "allow-forward",
            "server-cert-sha256",
            "proxy",
        ] {
            assert!(script.contains(word), "{word} missing");
        }
    }
}

/// `groff -man` renders a page as plain text; warnings fail the test.
fn render(page: &Path) -> String {
    let out = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .expect("groff runs (Debian package groff-base)");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -P-cbou: plain text, no bold or underline by overstriking.
    let out = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-")
}

#[tokio::test]
async fn manual_pages_render_for_the_command_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let top = stdout_of(&["man"]).await;
    assert!(
        top.starts_with(".ie") || top.starts_with(".TH"),
        "{}",
        &top[..80]
    );
    let page = dir.path().join("stdout.1");
    std::fs::write(&page, &top).unwrap();
    let text = render(&page);
    for sub in ["server", "http", "start", "completions", "man"] {
        assert!(text.contains(sub), "{sub} missing:\n{text}");
    }

    let pages = dir.path().join("pages");
    stdout_of(&["man", "--dir", pages.to_str().unwrap()]).await;
    for name in [
        "underpass.1",
        "underpass-server.1",
        "underpass-http.1",
        "underpass-admin-sessions-kill.1",
    ] {
        assert!(pages.join(name).is_file(), "{name} not written");
    }
    let server = render(&pages.join("underpass-server.1"));
    assert!(server.contains("--allow-forward"), "{server}");
    assert!(server.contains("UNDERPASS_ALLOW_FORWARD"), "{server}");
    let http = render(&pages.join("underpass-http.1"));
    assert!(http.contains("--server-cert-sha256"), "{http}");
}
