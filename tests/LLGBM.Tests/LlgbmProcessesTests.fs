module LLGBM.Tests.LlgbmProcessesTests

open System.IO
open Expecto
open LLGBM.Cli.Pipeline
open LLGBM.Tests.SafetensorsTests.Kit

/// A small synthetic suite written by a child `llgbm tasks synth`.
let private synth (dir: string) = [| "tasks"; "synth"; "--out"; dir; "--train"; "12"; "--test"; "4" |]

[<Tests>]
let tests =
    testList "LlgbmProcesses" [
        test "LlgbmProcesses runs every job as a child process, tags its lines and keeps its log" {
            withTempDir (fun root ->
                use log = new StringWriter()
                let logs = Path.Combine(root, "logs")
                let processes = LlgbmProcesses(2, logs, log)

                let code =
                    processes.RunAll(
                        [|
                            LlgbmJob("one", synth (Path.Combine(root, "one")))
                            LlgbmJob("two", synth (Path.Combine(root, "two")))
                        |]
                    )

                Expect.equal code 0 "both succeed"

                for name in [ "one"; "two" ] do
                    Expect.isTrue (File.Exists(Path.Combine(root, name, "suite.json"))) $"job {name} wrote its suite"
                    let own = File.ReadAllText(Path.Combine(logs, name + ".log"))
                    Expect.isNonEmpty own $"{name}.log holds the child's output"

                    let tagged =
                        log.ToString().Split('\n') |> Array.filter (fun l -> l.StartsWith $"[{name}] ")

                    Expect.isGreaterThan tagged.Length 1 $"the command and the child's lines are tagged [{name}]")
        }

        test "LlgbmProcesses stops starting jobs after a failure and returns its exit code" {
            withTempDir (fun root ->
                use log = new StringWriter()
                let processes = LlgbmProcesses(1, Path.Combine(root, "logs"), log)

                let code =
                    processes.RunAll(
                        [|
                            LlgbmJob("bad", [| "tasks"; "synth"; "--out"; Path.Combine(root, "bad"); "--train"; "x" |])
                            LlgbmJob("after", synth (Path.Combine(root, "after")))
                        |]
                    )

                Expect.notEqual code 0 "the failed job's exit code"
                Expect.isFalse (Directory.Exists(Path.Combine(root, "after"))) "no job starts after the failure"
                Expect.stringContains (log.ToString()) "[bad] failed with exit code" "the failure is reported")
        }

        test "LlgbmProcesses refuses fewer than one job" {
            let message =
                LLGBM.Tests.TestModels.errorMessage<LLGBM.LlgbmException>(fun () ->
                    LlgbmProcesses(0, Path.GetTempPath(), TextWriter.Null) |> ignore)

            Expect.stringContains message "--jobs" "names the option"
        }
    ]
