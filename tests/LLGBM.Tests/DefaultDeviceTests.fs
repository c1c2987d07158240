module LLGBM.Tests.DefaultDeviceTests

open System.Diagnostics
open Expecto
open LLGBM.Cli
open LLGBM.Tests.TestCli

/// The help of `llgbm forward` from a child process whose LLGBM_DEVICE is `value` (unset when None).
let private forwardHelp (value: string option) =
    let info =
        ProcessStartInfo("dotnet", RedirectStandardOutput = true, UseShellExecute = false)

    info.ArgumentList.Add(typeof<TorchChoices>.Assembly.Location)
    info.ArgumentList.Add "forward"
    info.ArgumentList.Add "--help"

    match value with
    | Some v -> info.Environment[TorchChoices.DeviceVariable] <- v
    | None -> info.Environment.Remove TorchChoices.DeviceVariable |> ignore

    use child = Process.Start info
    let text = child.StandardOutput.ReadToEnd()
    child.WaitForExit()
    Expect.equal child.ExitCode 0 "help succeeds"
    text

[<Tests>]
let tests =
    testList "DefaultDevice" [
        test "Every command's default --device is LLGBM_DEVICE when set, else cpu" {
            let deviceLine (help: string) =
                help.Split('\n') |> Array.find (fun l -> l.TrimStart().StartsWith "--device")

            Expect.stringContains (deviceLine (forwardHelp None)) "[default: cpu]" "unset: cpu"
            Expect.stringContains (deviceLine (forwardHelp (Some "cuda:3"))) "[default: cuda:3]" "set: its value"
        }

        test "llgbm pipeline refuses an unknown --device before running anything" {
            let (code, _, err) =
                llgbm [ "pipeline"; "--device"; "gpu"; "--out"; "/nonexistent/never-written" ]

            Expect.notEqual code 0 "fails"

            Expect.stringContains
                err
                "--device gpu: expected cpu, cuda or cuda:N"
                "names the value and what is expected"

            Expect.isFalse (System.IO.Directory.Exists "/nonexistent/never-written") "nothing written"
        }
    ]
