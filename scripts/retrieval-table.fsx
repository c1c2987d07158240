// Retrieval and merging of teacher adapters on the held-out tasks (the B2 baseline, `llgbm retrieve-merge`): for each
// task, the base model, the mean teacher, and each merge of the k teachers retrieved by predicted delta (mean ± std
// over conditions). Reads RUNS/retrieval/*.json; writes OUT/tables/retrieval.md (+ .tex).
//
//   ./llgbm --help >/dev/null                            # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/retrieval-table.fsx [RUNS] [OUT]  # defaults: runs, paper
#load "Common.fsx"

open System.IO
open Common

let dir = Path.Combine(runsRoot, "retrieval")

let files =
    if Directory.Exists dir then
        Directory.GetFiles(dir, "*.json") |> Array.sort |> List.ofArray
    else
        []

if files.IsEmpty then
    fail $"{dir}: no retrieve-merge results (llgbm retrieve-merge --out {dir}/TASK.json; llgbm pipeline writes them)."

let results = files |> List.map (fun f -> f, readJson f)

let merges =
    results
    |> List.collect (fun (f, r) ->
        (required f r "merges").AsArray()
        |> Seq.map (fun m -> (required f m "merge").GetValue<string>())
        |> List.ofSeq)
    |> List.distinct

let rows = [
    for (f, r) in results ->
        let value (name: string) = (required f r name).GetValue<float>()

        let mergeCell (name: string) =
            (required f r "merges").AsArray()
            |> Seq.tryFind (fun m -> (required f m "merge").GetValue<string>() = name)
            |> Option.map (fun m ->
                let mean = (required f m "mean").GetValue<float>()
                let std = (required f m "std").GetValue<float>()
                $"{percent mean} ± {percent std}")
            |> Option.defaultValue "—"

        [
            (required f r "task").GetValue<string>()
            string ((required f r "pool").GetValue<int>())
            percent (value "base")
            percent (value "mean_teacher")
        ]
        @ (merges |> List.map mergeCell)
]

let mean (column: int) =
    results
    |> List.averageBy (fun (f, r) ->
        match column with
        | 0 -> (required f r "base").GetValue<float>()
        | 1 -> (required f r "mean_teacher").GetValue<float>()
        | i ->
            (required f r "merges").AsArray()
            |> Seq.tryFind (fun m -> (required f m "merge").GetValue<string>() = merges[i - 2])
            |> Option.map (fun m -> (required f m "mean").GetValue<float>())
            |> Option.defaultValue nan)

let table = {
    Caption =
        "Retrieval + merge on the held-out tasks: k teachers retrieved by the delta predicted from the condition (nearest condition), merged on ΔW"
    Left = 1
    Header = [ "task"; "pool"; "base"; "mean teacher" ] @ merges
    Rows =
        rows
        @ [ [ "mean"; "" ] @ [ for i in 0 .. merges.Length + 1 -> percent (mean i) ] ]
    Notes = [
        "The pool holds the training tasks' kept teachers only (every held-out task's teachers left out); accuracy mean ± std over 3 conditions."
    ]
}

writeTables "retrieval" [ table ]
printfn "wrote %s" (Path.Combine(outRoot, "tables", "retrieval.md"))
