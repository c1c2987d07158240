/// Runs the llgbm command in-process for tests.
module LLGBM.Tests.TestCli

open System.IO
open LLGBM.Cli

/// Runs `llgbm args` in-process; returns (exit code, stdout, stderr).
let llgbm (args: string list) =
    use out = new StringWriter()
    use err = new StringWriter()
    let code = LlgbmCommand.Run(Array.ofList args, out, err)
    code, out.ToString(), err.ToString()
