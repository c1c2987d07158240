// Delta quality of the teacher pool: the silhouette of four adapter representations by domain (next to the values
// Delta Activations publishes), per domain, and the additivity of the mixture tasks, from RUNS/eval/delta-quality.json
// (the output of `llgbm eval deltas --out`); and a 2-D PCA of the cached teacher deltas coloured by domain, one chart
// per probe context (manifest) of RUNS/deltas. Writes OUT/tables/delta-quality.md (+ .tex) and
// OUT/figures/delta-pca.html; either part is skipped, with a message, when its input is missing.
//
//   ./llgbm --help >/dev/null                       # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/delta-quality.fsx [RUNS] [OUT] # defaults: runs, paper
#load "Common.fsx"

open System
open System.IO
open System.Text.Json.Nodes
open Deedle
open TorchSharp
open XPlot.Plotly
open LLGBM.Algebra
open LLGBM.Checkpoints
open Common

let qualityFile = Path.Combine(runsRoot, "eval", "delta-quality.json")
let cacheDir = Path.Combine(runsRoot, "deltas")
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
// PCA of the cached deltas

/// One cached delta: a manifest line with its vector.
type CachedDelta = {
    Task: string
    Domain: string
    Step: int
    Adapter: string
    Vector: float32[]
    Metadata: Collections.Generic.IReadOnlyDictionary<string, string>
}

let readManifest (manifest: string) : CachedDelta list = [
    for line in File.ReadAllLines manifest do
        if line.Trim() <> "" then
            let entry = JsonNode.Parse line
            let field = required manifest entry
            let path = Path.Combine(cacheDir, "deltas", text (field "key") + ".safetensors")

            if not (File.Exists path) then
                printfn "  %s: listed in %s but missing, left out" path manifest
            else
                use reader = SafetensorsReader.Open path
                use delta = reader.Read "delta"

                {
                    Task = text (field "task")
                    Domain = text (field "domain")
                    Step = (field "step").GetValue<int>()
                    Adapter = text (field "adapter")
                    Vector = delta.to_type(torch.float32).data<float32>().ToArray()
                    Metadata = reader.Metadata
                }
]

/// The first two principal components of the rows (centred), by SVD: each point's coordinates and the share of the
/// variance each component explains. A component's sign is fixed so that its largest loading is positive.
let pca2 (rows: float32[][]) =
    use scope = torch.NewDisposeScope()
    let n, d = rows.Length, rows[0].Length
    let values: float[] = Array.concat rows |> Array.map float
    let x = torch.tensor(values).reshape(int64 n, int64 d)
    let centred = x - x.mean ([| 0L |], keepdim = true)
    let struct (u, s, vh) = torch.linalg.svd (centred, fullMatrices = false)
    let k = min 2L s.shape[0]

    let signs =
        vh.narrow(0L, 0L, k).gather(1L, vh.narrow(0L, 0L, k).abs().argmax(1L, keepdim = true)).sign().squeeze(1L)

    let coords = u.narrow (1L, 0L, k) * s.narrow (0L, 0L, k) * signs
    let variance = s.square ()

    let explained =
        (variance.narrow (0L, 0L, k) / variance.sum ()).data<float>().ToArray()

    let columns = coords.data<float>().ToArray()
    let point i = [| for c in 0 .. int k - 1 -> columns[i * int k + c] |]
    Array.init n point, explained

/// The points of one manifest as a Deedle frame: task, domain, step, adapter and the two coordinates.
let pcaFrame (deltas: CachedDelta list) =
    let coords, explained = pca2 (deltas |> List.map _.Vector |> Array.ofList)

    let frame =
        deltas
        |> List.mapi (fun i d -> {|
            Task = d.Task
            Domain = d.Domain
            Step = d.Step
            Adapter = d.Adapter
            PC1 = coords[i][0]
            PC2 = (if coords[i].Length > 1 then coords[i][1] else 0.0)
        |})
        |> Frame.ofRecords

    frame, explained

let pcaChart (index: int) (manifest: string) =
    let deltas = readManifest manifest

    if deltas.Length < 3 then
        printfn "  %s: %d deltas, too few for a PCA" manifest deltas.Length
        None
    else
        let frame, explained = pcaFrame deltas
        let meta = deltas.Head.Metadata

        let describe key =
            match meta.TryGetValue key with
            | true, v -> v
            | _ -> "?"
        // The silhouette of the raw deltas by domain (mixtures left out), as in the delta-quality table.
        let labelled = deltas |> List.filter (fun d -> d.Domain <> "mixture")

        let silhouette =
            Clustering.silhouette
                (labelled |> List.map _.Vector |> Array.ofList)
                (labelled |> List.map _.Domain |> Array.ofList)

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

        let title =
            let probes, spec = describe "probe_set", describe "spec"
            $"{deltas.Length} deltas, probes {probes}, spec {spec}"

        printfn
            "  %s: %d deltas of dimension %d, PC1 %s, PC2 %s, silhouette by domain %s"
            (Path.GetFileName manifest)
            deltas.Length
            deltas.Head.Vector.Length
            (share 0)
            (share 1)
            (cos3 silhouette)

        let layout =
            Layout(
                title = title,
                xaxis = Xaxis(title = $"PC1 ({share 0})"),
                yaxis = Yaxis(title = $"PC2 ({share 1})"),
                width = 900.,
                height = 650.
            )

        let heading =
            $"Context {Path.GetFileNameWithoutExtension(manifest)[..11]}: {deltas.Length} teacher deltas "
            + $"(silhouette by domain without mixtures {cos3 silhouette})"

        Some(
            heading,
            traces
            |> Chart.Plot
            |> Chart.WithLayout layout
            |> Chart.WithId $"delta-pca-{index}"
        )

let manifests =
    let dir = Path.Combine(cacheDir, "manifests")

    if Directory.Exists dir then
        Directory.GetFiles(dir, "*.jsonl") |> Array.sort |> List.ofArray
    else
        []

if manifests.IsEmpty then
    printfn "%s: no delta cache manifests (fill it with `llgbm deltas compute`), delta PCA skipped" cacheDir
else
    let charts = manifests |> List.mapi pcaChart |> List.choose id

    if not charts.IsEmpty then
        writeFigure
            "delta-pca"
            "Teacher deltas: PCA by domain"
            ("The cached delta of every teacher checkpoint in "
             + cacheDir
             + ", projected on the first two principal components of the centred deltas (SVD), coloured by the "
             + "task's domain; mixture tasks as open diamonds. Hover for the adapter.")
            charts
