// Delta quality of generated adapters: for each evaluated generator run, the silhouette by domain of four
// representations of its generated adapters (delta activation, flattened A and B, flattened ΔW, the base model's prompt
// embedding), next to the teachers' (RUNS/eval/delta-quality.json when present), and how near each generated delta is to
// its own task's teacher delta against the other tasks', from RUNS/eval/generated-deltas.json (the output of
// `llgbm eval generated-deltas --out`). Writes OUT/tables/generated-delta-quality.md (+ .tex); skipped, with a message,
// when the input is missing.
//
//   ./llgbm --help >/dev/null                                   # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/generated-delta-quality.fsx [RUNS] [OUT]  # defaults: runs, paper
#load "Common.fsx"

open System.IO
open System.Text.Json.Nodes
open Common

let resultsFile = layout.Study "generated-deltas"
let teacherFile = layout.Study "delta-quality"
let number (node: JsonNode) = node.GetValue<float>()
let text (node: JsonNode) = node.GetValue<string>()
let integer (node: JsonNode) = node.GetValue<int>()
let items (node: JsonNode) = node.AsArray() |> List.ofSeq
let d3 = fixedDigits 3

let representations = [
    "delta-activation"
    "lora-weights-ab"
    "lora-delta-w"
    "prompts-base-hidden-mean"
]

let tables (file: string) =
    let root = readJson file
    let field = required file
    let runs = field root "runs" |> items

    let score (silhouettes: JsonNode list) representation level =
        silhouettes
        |> List.tryFind (fun s -> text (s["representation"]) = representation && text (s["level"]) = level)
        |> Option.map (fun s -> d3 (number s["silhouette"]))
        |> Option.defaultValue "—"

    let teacherRow =
        if File.Exists teacherFile then
            let teacher = readJson teacherFile

            let silhouettes =
                required teacherFile (required teacherFile teacher "report") "silhouettes"
                |> items

            [
                [
                    "teachers (checkpoint level)"
                    "—"
                    yield!
                        representations
                        |> List.collect (fun r -> [ score silhouettes r "checkpoint"; "—" ])
                ]
            ]
        else
            []

    let batches = integer (field root "batches")
    let probes, spec = text (field root "probes"), text (field root "delta_spec")

    let silhouetteTable = {
        Caption = "Silhouette by domain (cosine distance) of generated adapters, per run and representation"
        Left = 1
        Header = [
            "run"
            "adapters"
            for r in representations do
                $"`{r}`, all"
                $"`{r}`, held-out"
        ]
        Rows = [
            yield! teacherRow
            for run in runs ->
                let silhouettes = field run "silhouettes" |> items

                [
                    text (field run "name")
                    string (integer (field run "adapters"))
                    yield!
                        representations
                        |> List.collect (fun r -> [ score silhouettes r "all"; score silhouettes r "test" ])
                ]
        ]
        Notes = [
            $"{batches} prompt batches (one generated adapter each) per task the run trained on or held "
            + "out, through the run's latest generator; mixture tasks left out. All: every generated adapter; held-out: those "
            + "of the run's held-out tasks. The teachers' row is the teacher pool's checkpoint-level silhouette "
            + "(`llgbm eval deltas`). The prompt embedding depends only on the prompts, not on the run, so its column is "
            + "the same for every run: it is the silhouette the condition itself carries."
        ]
    }

    let matchTable = {
        Caption = "Generated deltas against the teachers' deltas: cosine to the own task's teacher and to the others"
        Left = 2
        Header = [
            "run"
            "tasks"
            "adapters"
            "cos(own teacher)"
            "mean cos(other teachers)"
            "margin"
            "own teacher nearest (%)"
            "mean rank of own teacher"
        ]
        Rows = [
            for run in runs do
                for m in field run "teacher_match" |> items ->
                    let s = required file m "summary"

                    [
                        text (field run "name")
                        (match text (required file m "subset") with
                         | "test" -> "held-out"
                         | other -> other)
                        string (integer (required file s "points"))
                        d3 (number (required file s "own"))
                        d3 (number (required file s "other"))
                        d3 (number (required file s "margin"))
                        percent (number (required file s "top1"))
                        fixedDigits 2 (number (required file s "mean_rank"))
                    ]
        ]
        Notes = [
            $"Deltas with probes `{probes}` and spec `{spec}`, the same as the "
            + "teachers' final-checkpoint deltas they are compared with. Margin: cos(own) minus the mean cosine to the other "
            + "tasks' teachers. Own teacher nearest: the share of generated deltas whose most similar teacher delta is their "
            + "own task's; mean rank: its rank among all teachers (1 best). Held-out tasks had no teacher in the run's training."
        ]
    }

    [ silhouetteTable; matchTable ]

if File.Exists resultsFile then
    writeTables "generated-delta-quality" (tables resultsFile)
else
    printfn
        "%s: missing (write it with `llgbm eval generated-deltas --out`), generated-delta tables skipped"
        resultsFile
