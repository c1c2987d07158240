// Delta quality of the teacher pool: the silhouette of four adapter representations by domain (next to the values
// Delta Activations publishes), per domain, and the additivity of the mixture tasks, from RUNS/eval/delta-quality.json
// (the output of `llgbm eval deltas --out`), and the teacher deltas on their first two principal components coloured by
// domain, from the same file's `pca`. Writes OUT/tables/delta-quality.md (+ .tex) and OUT/figures/delta-pca.html;
// both are skipped, with a message, when the file is missing.
//
//   ./llgbm --help >/dev/null                       # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/delta-quality.fsx [RUNS] [OUT] # defaults: runs, paper
#load "Common.fsx"

open System
open System.IO
open System.Text.Json.Nodes
open Deedle
open XPlot.Plotly
open Common

let qualityFile = layout.Study "delta-quality"
let number (node: JsonNode) = node.GetValue<float>()
let text (node: JsonNode) = node.GetValue<string>()

let items (node: JsonNode) =
    node.AsArray() |> Seq.map (fun n -> n) |> List.ofSeq

let cos3 = fixedDigits 3

// ---------------------------------------------------------------------------------------------------------------
// Tables

let tables (file: string) =
    let root = readJson file
    let field = required file
    let report = field root "report"
    let representations = field report "representations" |> items
    let silhouettes = field report "silhouettes" |> items
    let additivity = field report "additivity" |> items

    let published =
        match root["published"] with
        | null -> Map.empty
        | p -> p.AsObject() |> Seq.map (fun kv -> kv.Key, number kv.Value) |> Map.ofSeq

    let silhouette representation level =
        silhouettes
        |> List.tryFind (fun s ->
            text (field s "representation") = representation
            && text (field s "level") = level)

    let points level =
        silhouettes
        |> List.filter (fun s -> text (field s "level") = level)
        |> List.map (fun s -> (field s "points").GetValue<int>())
        |> List.distinct
        |> List.map string
        |> String.concat "/"

    let names = representations |> List.map (fun r -> text (field r "name"))

    let score representation level =
        silhouette representation level
        |> Option.map (fun s -> cos3 (number (field s "silhouette")))
        |> Option.defaultValue "—"

    let context =
        [ "probes"; "delta_spec"; "adapters"; "teachers" ]
        |> List.choose (fun k ->
            root[k]
            |> Option.ofObj
            |> Option.map (fun v -> $"{k} `{v.ToJsonString().Trim('\"')}`"))
        |> String.concat ", "

    let checkpointPoints, taskPoints = points "checkpoint", points "task"

    let silhouetteTable = {
        Caption = "Silhouette by domain (cosine distance) of four representations of the teacher adapters"
        Left = 1
        Header = [
            "representation"
            "dimension"
            $"checkpoint level ({checkpointPoints} points)"
            $"task level ({taskPoints} points)"
            "Delta Activations (published)"
        ]
        Rows = [
            for r in representations ->
                let name = text (field r "name")

                [
                    $"`{name}`"
                    string ((field r "dimension").GetValue<int>())
                    score name "checkpoint"
                    score name "task"
                    published.TryFind name |> Option.map cos3 |> Option.defaultValue "—"
                ]
        ]
        Notes = [
            "Silhouette with cosine distance over domain labels, averaged over points (1: tight domains in different "
            + "directions, 0: the domain does not show, negative: points nearer another domain). Checkpoint level: every "
            + "kept adapter; task level: final checkpoints only; mixture tasks left out. Published: Delta Activations "
            + "(arXiv 2509.04442), 5 domains × 3 adapters. Inputs: "
            + context
            + "."
        ]
    }

    let domains =
        silhouettes
        |> List.collect (fun s -> field s "per_domain" |> items |> List.map (fun d -> text (field d "domain")))
        |> List.distinct

    let perDomainTable = {
        Caption = "Silhouette per domain at checkpoint level"
        Left = 1
        Header = [ "representation"; yield! domains ]
        Rows = [
            for name in names ->
                let perDomain =
                    silhouette name "checkpoint"
                    |> Option.map (fun s -> field s "per_domain" |> items)
                    |> Option.defaultValue []

                let label = $"`{name}`"

                label
                :: [
                    for d in domains ->
                        perDomain
                        |> List.tryFind (fun p -> text (field p "domain") = d)
                        |> Option.map (fun p -> cos3 (number (field p "silhouette")))
                        |> Option.defaultValue "—"
                ]
        ]
        Notes = [ "The mean silhouette of each domain's points (every kept adapter)." ]
    }

    let additivityTable = {
        Caption = "Additivity: a mixture task's embedding against the sum of its two components' (final checkpoints)"
        Left = 2
        Header = [
            "mixture (c1+c2)"
            "representation"
            "cos(mix, c1 + c2)"
            "cos(mix, c1)"
            "cos(mix, c2)"
            "gain"
        ]
        Rows = [
            for a in additivity |> List.sortBy (fun a -> text (field a "mixture")) ->
                let single = field a "with_components" |> items |> List.map (number >> cos3)
                let representation = text (field a "representation")

                [
                    text (field a "mixture")
                    $"`{representation}`"
                    cos3 (number (field a "with_sum"))
                    single |> List.tryItem 0 |> Option.defaultValue "—"
                    single |> List.tryItem 1 |> Option.defaultValue "—"
                    cos3 (number (field a "gain"))
                ]
        ]
        Notes = [
            "Gain: cos(mix, c1 + c2) minus the better of cos(mix, c1) and cos(mix, c2); positive when the mixture's "
            + "embedding is nearer the sum than either component."
            + (match report["skipped_mixtures"] with
               | null -> ""
               | s when s.AsArray().Count = 0 -> ""
               | s -> $" Skipped mixtures: {s.ToJsonString()}.")
        ]
    }

    [ silhouetteTable; perDomainTable; additivityTable ]

if File.Exists qualityFile then
    writeTables "delta-quality" (tables qualityFile)
else
    printfn "%s: missing (write it with `llgbm eval deltas --out`), delta-quality tables skipped" qualityFile

// ---------------------------------------------------------------------------------------------------------------
// The teacher deltas on their first two principal components

/// The PCA chart of the file's `pca` (written by `llgbm eval deltas`), with a heading; None when there is none.
let pcaChart (file: string) =
    let root = readJson file
    let field = required file

    match root["pca"] with
    | null ->
        printfn "  %s: no PCA (fewer than three adapters)" file
        None
    | pca ->
        let explained = field pca "explained" |> items |> List.map number |> Array.ofList

        let frame =
            field pca "points"
            |> items
            |> List.map (fun p -> {|
                Task = text (field p "task")
                Domain = text (field p "domain")
                Step = (field p "step").GetValue<int>()
                Adapter = text (field p "adapter")
                PC1 = number (field p "pc1")
                PC2 = number (field p "pc2")
            |})
            |> Frame.ofRecords

        let count = frame.RowCount
        let probes, spec = text (field root "probes"), text (field root "delta_spec")

        // The checkpoint-level silhouette of the deltas by domain (mixtures left out), from the same report.
        let silhouette =
            field (field root "report") "silhouettes"
            |> items
            |> List.tryFind (fun s ->
                text (field s "representation") = "delta-activation"
                && text (field s "level") = "checkpoint")
            |> Option.map (fun s -> cos3 (number (field s "silhouette")))
            |> Option.defaultValue "—"

        let domains =
            frame.GetColumn<string> "Domain"
            |> Series.values
            |> Seq.distinct
            |> Seq.sort
            |> List.ofSeq

        let traces = [
            for i, domain in List.indexed domains ->
                let rows =
                    frame |> Frame.filterRowValues (fun r -> r.GetAs<string> "Domain" = domain)

                Scatter(
                    x = (rows.GetColumn<float> "PC1" |> Series.values),
                    y = (rows.GetColumn<float> "PC2" |> Series.values),
                    text = (rows.GetColumn<string> "Adapter" |> Series.values),
                    mode = "markers",
                    name = domain,
                    marker =
                        Marker(
                            color =
                                (if domain = "mixture" then
                                     "#7f7f7f"
                                 else
                                     palette[i % palette.Length]),
                            symbol = (if domain = "mixture" then "diamond-open" else "circle"),
                            size = 8.
                        )
                )
        ]

        let share i =
            if i < explained.Length then
                $"{100.0 * explained[i]:F1}%% of the variance"
            else
                "—"

        printfn
            "  %s: %d deltas, PC1 %s, PC2 %s, silhouette by domain %s"
            (Path.GetFileName file)
            count
            (share 0)
            (share 1)
            silhouette

        let layout =
            Layout(
                title = $"{count} deltas, probes {probes}, spec {spec}",
                xaxis = Xaxis(title = $"PC1 ({share 0})"),
                yaxis = Yaxis(title = $"PC2 ({share 1})"),
                width = 900.,
                height = 650.
            )

        let heading =
            $"Probes {probes}: {count} teacher deltas (silhouette by domain without mixtures {silhouette})"

        Some(heading, traces |> Chart.Plot |> Chart.WithLayout layout |> Chart.WithId "delta-pca-0")

if File.Exists qualityFile then
    match pcaChart qualityFile with
    | Some chart ->
        writeFigure
            "delta-pca"
            "Teacher deltas: PCA by domain"
            ("The delta activation of every kept teacher checkpoint, as `llgbm eval deltas` computed it, projected on "
             + "the first two principal components of the centred deltas (SVD), coloured by the task's domain; mixture "
             + "tasks as open diamonds. Hover for the adapter.")
            [ chart ]
    | None -> ()
