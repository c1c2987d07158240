// The low-data table: dnd-weight trained on a fraction of the training tasks (every domain kept) or on one checkpoint
// per teacher, against the same config on every task and checkpoint: accuracy on the training tasks it trained on
// (fresh conditions, test examples), on the training tasks it did not see, and on the held-out tasks of the split.
// Reads RUNS/generators/low-data/*/ and the full-data run RUNS/generators/<config>-seed0 (results/heldout.json,
// run.json) and the suite's splits (RUNS/suite/suite.json); writes OUT/tables/low-data.md and low-data.tex.
//
//   ./llgbm --help >/dev/null                      # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/low-data.fsx [RUNS] [OUT]   # defaults: runs, paper
#load "Common.fsx"

open System.IO
open System.Text.Json.Nodes
open LLGBM.Generators
open Common
open LLGBM.Experiments

let lowDataDir = layout.LowData

if not (Directory.Exists lowDataDir) then
    fail
        $"{lowDataDir}: no low-data runs; train them with llgbm generator train --train-fraction F --out {lowDataDir}/NAME (llgbm pipeline does)."

let suiteFile = layout.SuiteManifest

let lowData =
    Directory.GetDirectories lowDataDir
    |> Array.filter (fun d -> File.Exists(Path.Combine(d, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)))
    |> Array.sort
    |> List.ofArray

if lowData.IsEmpty then
    fail $"{lowDataDir}: no low-data run has results/heldout.json yet."

let configOf (dir: string) =
    GeneratorConfig.Load(Path.Combine(dir, GeneratorRun.ConfigFile))

let baseConfig =
    let name = (configOf lowData.Head).Name
    name.Substring(0, name.IndexOf "-seed")

let fullData =
    layout.Generator $"{baseConfig}-seed0"
    |> fun d ->
        if File.Exists(Path.Combine(d, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)) then
            [ d ]
        else
            []

let split (config: GeneratorConfig) =
    (required suiteFile (readJson suiteFile) "splits").AsArray()
    |> Seq.tryFind (fun s -> (required suiteFile s "name").GetValue<string>() = config.Split)
    |> Option.defaultWith (fun () -> fail $"{suiteFile}: no split named {config.Split}.")

let names (node: JsonNode) =
    node.AsArray() |> Seq.map (fun n -> n.GetValue<string>()) |> Set.ofSeq

let row (dir: string) =
    let config = configOf dir
    let s () = split config
    // The run's held-out tasks: those its config names, or the split's.
    let heldOut =
        match config.TestTasks with
        | null -> names (required suiteFile (s ()) "test")
        | tasks -> Set.ofSeq tasks

    let runFile = Path.Combine(dir, GeneratorRun.RunFile)
    let trained = names (required runFile (readJson runFile) "train_tasks")

    let generated =
        (GeneratorRun.ReadResults(Path.Combine(dir, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile))).Results
        |> Seq.filter (fun r -> r.Method = "generated")
        |> List.ofSeq

    let mean (rows: MethodTaskResult list) =
        if rows.IsEmpty then nan else rows |> List.averageBy _.Mean

    let onTrained = generated |> List.filter (fun r -> r.Split = "in-domain")

    let unseen =
        generated
        |> List.filter (fun r -> r.Split = "held-out" && not (heldOut.Contains r.Task))

    let onHeldOut =
        generated
        |> List.filter (fun r -> r.Split = "held-out" && heldOut.Contains r.Task)

    [
        config.Name
        string trained.Count
        (if config.TeacherCheckpoints = 0 then
             "all"
         else
             string config.TeacherCheckpoints)
        percent (mean onTrained)
        (if unseen.IsEmpty then
             "—"
         else
             $"{percent (mean unseen)} ({unseen.Length})")
        percent (mean onHeldOut)
    ]

let table = {
    Caption =
        $"The low-data regime: {baseConfig} with fewer training tasks or teacher checkpoints (seed 0), accuracy (%%)"
    Left = 1
    Header = [
        "run"
        "training tasks"
        "checkpoints per teacher"
        "trained tasks"
        "unseen training tasks (n)"
        "held-out tasks"
    ]
    Rows = (fullData @ lowData) |> List.map row
    Notes = [
        "Training tasks are kept per domain (n · fraction of a domain's n tasks rounded up, at least one, spread "
        + "over its list), so every domain stays represented; one checkpoint per teacher keeps each teacher's last. "
        + "Trained tasks: the in-domain sample of the tasks a run trained on (fresh conditions, test examples); "
        + "unseen training tasks: the split's training tasks a low-data run left out, evaluated like held-out tasks; "
        + "held-out: the split's held-out tasks. Every run takes the same number of steps."
    ]
}

writeTables "low-data" [ table ]
