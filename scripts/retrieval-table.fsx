// Retrieval and merging of teacher adapters on the held-out tasks (the B2 baseline, `llgbm retrieve-merge`): for each
// task, the base model, the mean teacher, and each merge of the k teachers retrieved by predicted delta (mean ± std
// over conditions) at k = 3 (or the only k there is); and the k sweep, each merge's mean accuracy over the tasks
// against k, with the sign-conflict rate of the retrieved teachers (raw and after the TIES trim). Reads
// RUNS/retrieval/k<K>/*.json; writes OUT/tables/retrieval.md (+ .tex).
//
//   ./llgbm --help >/dev/null                            # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/retrieval-table.fsx [RUNS] [OUT]  # defaults: runs, paper
#load "Common.fsx"

open System.IO
open System.Text.Json.Nodes
open Common

let dir = layout.RetrievalFolder

/// The results by k: (k, [(file, result)]), k ascending.
let byK =
    if not (Directory.Exists dir) then
        []
    else
        Directory.GetDirectories(dir, "k*")
        |> Array.choose (fun d ->
            match System.Int32.TryParse(Path.GetFileName(d).Substring 1) with
            | true, k ->
                let files = Directory.GetFiles(d, "*.json") |> Array.sort |> List.ofArray

                if files.IsEmpty then
                    None
                else
                    Some(k, files |> List.map (fun f -> f, readJson f))
            | _ -> None)
        |> Array.sortBy fst
        |> List.ofArray

if byK.IsEmpty then
    fail
        $"{dir}: no retrieve-merge results (llgbm retrieve-merge --out {dir}/k<K>/TASK.json; llgbm pipeline writes them)."

let mergesOf (results: (string * JsonNode) list) =
    results
    |> List.collect (fun (f, r) ->
        (required f r "merges").AsArray()
        |> Seq.map (fun m -> (required f m "merge").GetValue<string>())
        |> List.ofSeq)
    |> List.distinct

let mergeMean (f: string) (r: JsonNode) (name: string) =
    (required f r "merges").AsArray()
    |> Seq.tryFind (fun m -> (required f m "merge").GetValue<string>() = name)
    |> Option.map (fun m -> (required f m "mean").GetValue<float>(), (required f m "std").GetValue<float>())

let headlineK, headline =
    byK |> List.tryFind (fun (k, _) -> k = 3) |> Option.defaultValue byK.Head

let merges = mergesOf headline

let perTask = {
    Caption =
        $"Retrieval + merge on the held-out tasks at k = {headlineK}: teachers retrieved by the delta predicted from "
        + $"the condition (nearest condition), merged on ΔW"
    Left = 1
    Header = [ "task"; "pool"; "base"; "mean teacher" ] @ merges
    Rows =
        [
            for (f, r) in headline ->
                let value (name: string) = (required f r name).GetValue<float>()

                [
                    (required f r "task").GetValue<string>()
                    string ((required f r "pool").GetValue<int>())
                    percent (value "base")
                    percent (value "mean_teacher")
                ]
                @ (merges
                   |> List.map (fun m ->
                       match mergeMean f r m with
                       | Some(mean, std) -> $"{percent mean} ± {percent std}"
                       | None -> "—"))
        ]
        @ [
            [
                "mean"
                ""
                percent (
                    headline
                    |> List.averageBy (fun (f, r) -> (required f r "base").GetValue<float>())
                )
                percent (
                    headline
                    |> List.averageBy (fun (f, r) -> (required f r "mean_teacher").GetValue<float>())
                )
            ]
            @ (merges
               |> List.map (fun m ->
                   percent (
                       headline
                       |> List.averageBy (fun (f, r) -> mergeMean f r m |> Option.map fst |> Option.defaultValue nan)
                   )))
        ]
    Notes = [
        "The pool holds the training tasks' kept teachers only (every held-out task's teachers left out); accuracy mean ± std over 3 conditions."
    ]
}

let allMerges = byK |> List.collect (snd >> mergesOf) |> List.distinct

/// The mean over tasks of a per-task rate, or "—" when the results predate it.
let meanRate (results: (string * JsonNode) list) (name: string) =
    let values =
        results
        |> List.choose (fun (_, r) -> r[name] |> Option.ofObj |> Option.map (fun v -> v.GetValue<float>()))

    if values.Length < results.Length then
        "—"
    else
        percent (List.average values)

let sweep = {
    Caption =
        "The k sweep: mean accuracy over the held-out tasks of each merge of the k retrieved teachers, and how often their signs conflict"
    Left = 1
    Header = [ "k"; "tasks"; "sign conflicts"; "after trim" ] @ allMerges
    Rows = [
        for (k, results) in byK ->
            [
                string k
                string results.Length
                meanRate results "sign_conflicts"
                meanRate results "sign_conflicts_trimmed"
            ]
            @ (allMerges
               |> List.map (fun m ->
                   let values =
                       results |> List.choose (fun (f, r) -> mergeMean f r m |> Option.map fst)

                   if values.IsEmpty then
                       "—"
                   else
                       percent (List.average values)))
    ]
    Notes = [
        "One adapter per retrieved task; uniform weights; TIES and DARE-TIES at density 0.2."
        "Sign conflicts: the share of ΔW entries where one retrieved teacher is positive and another negative "
        + "(TIES's Figure 3), before and after trimming each teacher to its top 20% by magnitude; mean over "
        + "conditions and tasks."
    ]
}

writeTables "retrieval" [ perTask; sweep ]
printfn "wrote %s" (Path.Combine(outRoot, "tables", "retrieval.md"))
