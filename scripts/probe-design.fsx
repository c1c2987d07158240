// Probe design of the delta activation (RQ3): for each design variant (generic probe count, generic or task probes,
// final-norm state or several layers, last token or mean pooling) the silhouette by domain, the leave-one-task-out 1-NN
// accuracy by domain and the cost, from RUNS/eval/probe-design.json (the output of `llgbm eval probe-design --out`).
// Writes OUT/tables/probe-design.md (+ .tex); skipped, with a message, when the input is missing.
//
//   ./llgbm --help >/dev/null                        # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/probe-design.fsx [RUNS] [OUT]  # defaults: runs, paper
#load "Common.fsx"

open System.IO
open System.Text.Json.Nodes
open Common

let resultsFile = layout.Study "probe-design"
let number (node: JsonNode) = node.GetValue<float>()
let text (node: JsonNode) = node.GetValue<string>()
let integer (node: JsonNode) = node.GetValue<int>()
let items (node: JsonNode) = node.AsArray() |> List.ofSeq
let d3 = fixedDigits 3

let table (file: string) =
    let root = readJson file
    let field = required file
    let variants = field root "variants" |> items

    let silhouette (v: JsonNode) level =
        field v "silhouettes"
        |> items
        |> List.tryFind (fun s -> text (field s "level") = level)

    let points level =
        variants
        |> List.choose (fun v -> silhouette v level |> Option.map (fun s -> integer (field s "points")))
        |> List.distinct
        |> List.map string
        |> String.concat "/"

    let defaultMs =
        variants
        |> List.tryFind (fun v -> text (field v "group") = "default")
        |> Option.map (fun v -> number (field v "min_milliseconds_per_adapter"))

    let checkpoints =
        match root["checkpoints_per_task"] with
        | null -> "every kept checkpoint of each task"
        | n -> $"the last {integer n} kept checkpoint(s) of each task"

    let checkpointPoints, taskPoints = points "checkpoint", points "task"

    let adapters, taskCount =
        integer (field root "adapters"), integer (field root "task_count")

    {
        Caption = "Probe design of the delta activation: quality by domain and cost of each variant (teacher pool)"
        Left = 2
        Header = [
            "variant"
            "changes"
            "probes"
            "probe tokens"
            "dimension"
            $"silhouette, checkpoints ({checkpointPoints})"
            $"silhouette, tasks ({taskPoints})"
            "1-NN same domain, checkpoints (%)"
            "1-NN same domain, tasks (%)"
            "ms per adapter (median)"
            "ms per adapter (least)"
            "cost vs default"
        ]
        Rows = [
            for v in variants ->
                let score level =
                    silhouette v level
                    |> Option.map (fun s -> d3 (number (field s "silhouette")))
                    |> Option.defaultValue "—"

                let ms = number (field v "min_milliseconds_per_adapter")

                [
                    "`" + text (field v "name") + "`"
                    text (field v "group")
                    string (integer (field v "probe_count"))
                    string (integer (field v "probe_tokens"))
                    string (integer (field v "dimension"))
                    score "checkpoint"
                    score "task"
                    percent (number (field (field v "nearest_checkpoint") "accuracy"))
                    percent (number (field (field v "nearest_task") "accuracy"))
                    fixedDigits 1 (number (field v "milliseconds_per_adapter"))
                    fixedDigits 1 ms
                    defaultMs |> Option.map (fun d -> $"{ms / d:F2}×") |> Option.defaultValue "—"
                ]
        ]
        Notes = [
            "Deltas of "
            + checkpoints
            + $" ({adapters} adapters of {taskCount} tasks; mixture tasks "
            + "left out of every score). Silhouette: cosine distance over domain labels, at checkpoint level (every adapter a "
            + "point) and task level (final checkpoints). 1-NN: the share of adapters whose nearest adapter (cosine) among the "
            + "other tasks' adapters is of their own domain. Cost: wall time of one adapter's delta (no gradients, base pass "
            + "excluded), the median and the least over the adapters, and the ratio of the least to the default design's "
            + "(the least is the time least disturbed by other work on the machine); probe tokens are the machine-"
            + "independent part. "
            + "Every variant changes one thing of the default (5 generic probes, final-norm state, last token); task probes "
            + "are training prompts of every task of the suite, so they carry the domains' input formats."
        ]
    }

if File.Exists resultsFile then
    writeTables "probe-design" [ table resultsFile ]
else
    printfn "%s: missing (write it with `llgbm eval probe-design --out`), probe-design table skipped" resultsFile
