module LLGBM.Tests.Main

open Expecto
open Expecto.Impl

let mutable private counts = (0, 0, 0)

/// Expecto's own printer, also keeping the counts for the closing line.
let private printer =
    let standard = defaultConfig.printer

    {
        standard with
            summary =
                fun config summary ->
                    async {
                        do! standard.summary config summary

                        counts <-
                            (summary.passed.Length,
                             summary.failed.Length + summary.errored.Length,
                             summary.ignored.Length)
                    }
    }

[<EntryPoint>]
let main argv =
    let code = runTestsInAssemblyWithCLIArgs [ Printer printer ] argv
    let (passed, failed, skipped) = counts
    // A plain closing line, alone on its line, for tools that read test counts.
    use stdout = new System.IO.StreamWriter(System.Console.OpenStandardOutput())
    stdout.Write $"\n{passed} passed, {failed} failed, {skipped} skipped\n"
    code
