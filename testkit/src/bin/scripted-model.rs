//! `scripted-model --script FILE [--listen ADDR] [--log FILE]`: the test
//! kit's scripted model server as a program, for tests outside Rust (the
//! browser suite). Prints `scripted-model listening on http://ADDR`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut script, mut listen, mut log) = (None, "127.0.0.1:0".to_owned(), None);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--script", Some(v)) => script = Some(v),
            ("--listen", Some(v)) => listen = v,
            ("--log", Some(v)) => log = Some(std::path::PathBuf::from(v)),
            _ => {
                eprintln!("usage: scripted-model --script FILE [--listen ADDR] [--log FILE]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(script) = script else {
        eprintln!("scripted-model: --script FILE is needed");
        return ExitCode::from(2);
    };
    let script: claw_testkit::model::Script = match std::fs::read_to_string(&script)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(script) => script,
        Err(e) => {
            eprintln!("scripted-model: {script}: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(listen) = listen.parse() else {
        eprintln!("scripted-model: --listen takes ADDR:PORT");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("scripted-model: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match claw_testkit::model::serve(script, listen, log).await {
            Ok((bound, task)) => {
                println!("scripted-model listening on http://{bound}");
                let _ = task.await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("scripted-model: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
