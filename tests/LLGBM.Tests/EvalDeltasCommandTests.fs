module LLGBM.Tests.EvalDeltasCommandTests

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Cli.Commands
open LLGBM.Delta
open LLGBM.Experiments
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Text
open LLGBM.Tests.TestCli

let pooled = [| "add-2"; "double"; "reverse"; "upper"; "mix-add-2+reverse" |]

/// A tiny base (random weights, byte tokenizer), a small suite and a pool of 5 tasks × 2 kept adapters (steps 2, 4):
/// two arithmetic tasks, two string tasks and the mixture of add-2 and reverse. The adapters are random (r 8, alpha 16
/// on q, k, v, gate, up, down; A and B from N(0, 0.05²)), written as PEFT directories with the records a trained pool
/// has, so the pool is built in seconds.
let fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-ed"
         let baseDir, suite = TestPools.tinyBaseAndSuite root

         let pool = Path.Combine(root, "teachers")
         let config = Qwen2Config.Load(Path.Combine(baseDir, "config.json"))
         let lora = TeacherTrainingSettings().Lora
         let baseHash = ContentHash.OfCheckpoint baseDir

         for i, task in Array.indexed pooled do
             let domain = TaskDirectory.Load(Path.Combine(suite, task)).Spec.Domain

             let checkpoints = [|
                 for step in [ 2; 4 ] ->
                     let relative = Path.Combine(task, $"step-{step:D5}")
                     let dir = Path.Combine(pool, relative)

                     use set =
                         TestModels.randomLora config (int64 (10 * i + step)) 8L 0.05 2.0 [
                             for layer in 0 .. config.NumHiddenLayers - 1 do
                                 for name in lora.TargetModules -> layer, name
                         ]

                     PeftAdapter.Save(dir, lora, set)

                     TeacherCheckpoint(
                         task,
                         domain,
                         step,
                         0L,
                         1.0,
                         0.0,
                         0,
                         relative,
                         ContentHash.OfFile(Path.Combine(dir, PeftAdapter.WeightsFileName)),
                         ContentHash.OfFile(Path.Combine(dir, PeftAdapter.ConfigFileName))
                     )
             |]

             let record = TeacherTaskManifest(task, "random", baseHash, 0.0, checkpoints)

             File.WriteAllText(
                 Path.Combine(pool, task, TeacherPool.TaskManifestName),
                 JsonSerializer.Serialize(record, TeacherTaskManifest.JsonOptions)
             )

         TeacherPool.WriteManifest pool |> ignore
         root, baseDir, suite, pool)

let private values (t: torch.Tensor) =
    t.detach().to_type(torch.float32).cpu().data<float32>().ToArray()

let private expectClose (actual: float32[]) (wanted: float32[]) message =
    Expect.equal actual.Length wanted.Length $"{message}: dimension"

    for i in 0 .. actual.Length - 1 do
        Expect.floatClose Accuracy.medium (float actual[i]) (float wanted[i]) $"{message}: element {i}"

/// The adapter's tensors read straight from its safetensors file: module path -> (A, A shape, B, B shape).
let private rawFactors (adapterDir: string) =
    use reader =
        SafetensorsReader.Open(Path.Combine(adapterDir, "adapter_model.safetensors"))

    let read (key: string) =
        use t = reader.Read key
        values t, t.shape

    [
        for key in reader.Entries.Keys do
            if key.EndsWith ".lora_A.weight" then
                let path =
                    key.Substring(0, key.Length - ".lora_A.weight".Length).Substring("base_model.model.".Length)

                let a, aShape = read key
                let b, bShape = read (path |> sprintf "base_model.model.%s.lora_B.weight")
                path, (a, aShape, b, bShape)
    ]
    |> List.sortWith (fun (p, _) (q, _) -> String.CompareOrdinal(p, q))

/// scale · B · A by plain loops, flattened row-major.
let private naiveDeltaWeight scale (a: float32[]) (aShape: int64[]) (b: float32[]) (bShape: int64[]) =
    let r, inDim, outDim = int aShape[0], int aShape[1], int bShape[0]

    [|
        for o in 0 .. outDim - 1 do
            for i in 0 .. inDim - 1 ->
                let mutable s = 0.0

                for k in 0 .. r - 1 do
                    s <- s + float b[o * r + k] * float a[k * inDim + i]

                float32 (scale * s)
    |]

/// The base model's final-norm hidden state averaged over the tokens of each prompt (one prompt per forward pass, no
/// padding), then over the prompts.
let private promptMean (model: Qwen2ForCausalLM) (tokenizer: ITokenizer) (prompts: string seq) =
    let rows = [|
        for p in prompts ->
            let ids = tokenizer.Encode p |> Seq.map int64 |> Array.ofSeq
            use input = torch.tensor(ids).reshape(1L, int64 ids.Length)
            use output = model.Forward(input, ForwardOptions(Logits = LogitPositions.None))
            use mean = output.HiddenLast.mean([| 1L |]).squeeze 0
            values mean
    |]

    Array.init rows[0].Length (fun i -> rows |> Array.averageBy (fun r -> float r[i]) |> float32)

let private cos (a: float32[]) (b: float32[]) =
    let dot =
        Array.fold2 (fun s (x: float32) (y: float32) -> s + float x * float y) 0.0 a b

    dot
    / sqrt (
        Array.sumBy (fun x -> float x * float x) a
        * Array.sumBy (fun x -> float x * float x) b
    )

[<Tests>]
let tests =
    testSequenced
    <| testList "EvalDeltas" [
        test
            "TeacherEmbeddings: cached and computed deltas agree; weights, dW and prompt means match plain computations" {
            let root, baseDir, suite, pool = fixture.Force()
            let tasks = TaskSuite.LoadAll suite
            let probes = ProbeSet.Generic 2
            let spec = DeltaSpec(MaxProbeLength = 48)

            let settings =
                TeacherEmbeddingSettings(Probes = probes, Spec = spec, PromptCount = 4)

            let computed = TeacherEmbeddings.Compute(baseDir, pool, tasks, settings)
            Expect.equal computed.Count 10 "5 tasks x 2 adapters"
            Expect.isTrue (computed |> Seq.forall (fun e -> not e.DeltaFromCache)) "no cache: all computed"

            Expect.sequenceEqual
                (computed |> Seq.map (fun e -> e.Checkpoint.Task, e.Checkpoint.Step, e.Final))
                [
                    for t in Array.sort pooled do
                        yield t, 2, false
                        yield t, 4, true
                ]
                "task then step order; the last step is final"

            let cache = Path.Combine(root, "cache")
            DeltaCache.Compute(baseDir, pool, cache, probes, spec) |> ignore
            let progress = ResizeArray()

            let withCache =
                TeacherEmbeddingSettings(Probes = probes, Spec = spec, PromptCount = 4, CacheDir = cache)

            let cached =
                TeacherEmbeddings.Compute(baseDir, pool, tasks, withCache, (fun line -> progress.Add line))

            Expect.isTrue (cached |> Seq.forall _.DeltaFromCache) "every delta read from the cache"
            Expect.equal progress.Count 10 "one progress line per adapter"

            for c, e in Seq.zip cached computed do
                expectClose c.Delta e.Delta $"{e.Checkpoint.Adapter}: cached delta"
                Expect.equal c.LoraWeights e.LoraWeights "weights do not depend on the cache"

            use model = Qwen2Checkpoint.Load baseDir
            model.eval () |> ignore
            let tokenizer = Tokenizers.Load baseDir

            for index in [ 0; 3 ] do
                let e = computed[index]
                let dir = Path.Combine(pool, e.Checkpoint.Adapter)
                let factors = rawFactors dir
                Expect.equal factors.Length (4 * 6) "4 layers x 6 target modules"

                let wantedWeights =
                    factors |> Seq.collect (fun (_, (a, _, b, _)) -> Seq.append a b) |> Array.ofSeq

                Expect.equal e.LoraWeights wantedWeights $"{e.Checkpoint.Adapter}: A then B, modules in ordinal order"

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))

                let scale =
                    config.RootElement.GetProperty("lora_alpha").GetDouble()
                    / config.RootElement.GetProperty("r").GetDouble()

                let wantedDeltaWeight =
                    factors
                    |> Seq.collect (fun (_, (a, aShape, b, bShape)) -> naiveDeltaWeight scale a aShape b bShape)
                    |> Array.ofSeq

                expectClose e.DeltaWeight wantedDeltaWeight $"{e.Checkpoint.Adapter}: dW = scale B A"

                // the adapter's position among its task's kept adapters picks the prompt sample
                let task = tasks |> Seq.find (fun t -> t.Spec.Name = e.Checkpoint.Task)

                let sample = PromptBatches.Sample(task, 4, PromptBatches.BatchSeed(0L, index % 2))

                let wantedPrompts = promptMean model tokenizer sample.Prompts

                for i in 0 .. wantedPrompts.Length - 1 do
                    Expect.floatClose
                        { absolute = 1e-5; relative = 1e-4 }
                        (float e.Prompts[i])
                        (float wantedPrompts[i])
                        $"{e.Checkpoint.Adapter}: prompt mean, element {i} (batched with padding vs one prompt at a time)"

            Expect.notEqual computed[0].Prompts computed[1].Prompts "the checkpoints of a task get different samples"
        }

        test "llgbm eval deltas: tables and JSON; silhouettes and additivity recomputed from the cached deltas" {
            let root, baseDir, suite, pool = fixture.Force()
            let cache = Path.Combine(root, "cli-cache")

            let (code, _, err) =
                llgbm [
                    "deltas"
                    "compute"
                    "--base"
                    baseDir
                    "--teachers"
                    pool
                    "--out"
                    cache
                    "--generic"
                    "2"
                ]

            Expect.equal code 0 err
            let jsonPath = Path.Combine(root, "eval-deltas.json")

            let args extra = [
                "eval"
                "deltas"
                "--base"
                baseDir
                "--teachers"
                pool
                "--tasks"
                suite
                "--cache"
                cache
                "--generic"
                "2"
                "--prompts"
                "4"
                yield! extra
            ]

            let (code, out, err) = llgbm (args [ "--out"; jsonPath ])
            Expect.equal code 0 err
            Expect.stringContains out "cos(mix, c1+c2)" "additivity table header"
            Expect.stringContains out "mix-add-2+reverse" "the mixture's row"
            Expect.stringContains out "lora-delta-w" "the dW representation"
            Expect.stringContains out "prompts-base-hidden-mean" "the prompt representation"
            Expect.stringContains out "10 adapters; deltas: 10 from the cache, 0 computed" "summary"
            Expect.stringContains err "10/10" "progress"

            use doc = JsonDocument.Parse(File.ReadAllText jsonPath)
            let report = doc.RootElement.GetProperty "report"
            let silhouettes = report.GetProperty("silhouettes").EnumerateArray() |> Array.ofSeq
            Expect.equal silhouettes.Length 8 "4 representations x 2 levels"

            let row name level =
                silhouettes
                |> Array.find (fun r ->
                    r.GetProperty("representation").GetString() = name
                    && r.GetProperty("level").GetString() = level)

            let deltaRow = row DeltaQualityStudy.DeltaName "checkpoint"
            Expect.equal (deltaRow.GetProperty("points").GetInt32()) 8 "mixture left out: 4 tasks x 2"
            Expect.equal ((row DeltaQualityStudy.PromptsName "task").GetProperty("points").GetInt32()) 4 "task level"

            // the same numbers from the cache's own deltas, with the naive silhouette
            let loaded =
                DeltaCache.Load(cache, baseDir, ProbeSet.Generic 2, DeltaSpec.Default)
                |> Array.ofSeq

            try
                let deltas = loaded |> Array.map (fun d -> d.Task, d.Domain, d.Step, values d.Delta)

                let plain = deltas |> Array.filter (fun (t, _, _, _) -> t <> "mix-add-2+reverse")

                let wanted =
                    ClusteringTests.naiveSilhouette
                        Clustering.cosineDistance
                        (plain |> Array.map (fun (_, _, _, v) -> v))
                        (plain |> Array.map (fun (_, d, _, _) -> d))

                Expect.floatClose
                    Accuracy.high
                    (deltaRow.GetProperty("silhouette").GetDouble())
                    wanted
                    "delta silhouette, checkpoint level"

                let final name =
                    deltas
                    |> Array.find (fun (t, _, s, _) -> t = name && s = 4)
                    |> fun (_, _, _, v) -> v

                let mix, add2, rev = final "mix-add-2+reverse", final "add-2", final "reverse"

                let additivity = report.GetProperty("additivity").EnumerateArray() |> Array.ofSeq

                Expect.equal additivity.Length 4 "one mixture x 4 representations"

                let deltaAdditivity =
                    additivity
                    |> Array.find (fun r -> r.GetProperty("representation").GetString() = DeltaQualityStudy.DeltaName)

                Expect.floatClose
                    Accuracy.high
                    (deltaAdditivity.GetProperty("with_sum").GetDouble())
                    (cos mix (Array.map2 (+) add2 rev))
                    "cos(mix, add-2 + reverse)"

                let singles =
                    deltaAdditivity.GetProperty("with_components").EnumerateArray()
                    |> Seq.map _.GetDouble()
                    |> Array.ofSeq

                Expect.floatClose Accuracy.high singles[0] (cos mix add2) "cos(mix, add-2)"
                Expect.floatClose Accuracy.high singles[1] (cos mix rev) "cos(mix, reverse)"

                // The PCA of every kept delta (mixture included): one point per adapter; the coordinates are centred,
                // and each component's squared coordinates are its share of the deltas' total squared deviation.
                let pca = doc.RootElement.GetProperty "pca"
                let points = pca.GetProperty("points").EnumerateArray() |> Array.ofSeq
                Expect.equal points.Length 10 "one point per adapter"

                Expect.equal
                    (points
                     |> Array.map (fun p -> p.GetProperty("task").GetString(), p.GetProperty("step").GetInt32())
                     |> Array.sort)
                    (deltas |> Array.map (fun (t, _, s, _) -> t, s) |> Array.sort)
                    "the pool's adapters"

                let vectors = deltas |> Array.map (fun (_, _, _, v) -> v |> Array.map float)
                let dimension = vectors[0].Length

                let mean =
                    Array.init dimension (fun j -> vectors |> Array.averageBy (fun v -> v[j]))

                let total =
                    vectors
                    |> Array.sumBy (fun v -> Array.map2 (fun a m -> (a - m) * (a - m)) v mean |> Array.sum)

                let explained =
                    pca.GetProperty("explained").EnumerateArray()
                    |> Seq.map _.GetDouble()
                    |> Array.ofSeq

                for name, share in [ "pc1", explained[0]; "pc2", explained[1] ] do
                    let coordinates = points |> Array.map (fun p -> p.GetProperty(name).GetDouble())
                    Expect.floatClose Accuracy.medium (Array.sum coordinates) 0.0 $"{name} centred"

                    Expect.floatClose
                        Accuracy.medium
                        (coordinates |> Array.sumBy (fun c -> c * c))
                        (share * total)
                        $"{name}: its variance share of the total"
            finally
                for d in loaded do
                    d.Dispose()

            let (code, printed, err) = llgbm (args [ "--json" ])
            Expect.equal code 0 err
            use again = JsonDocument.Parse printed

            Expect.equal
                (again.RootElement.GetProperty("report").GetRawText())
                (report.GetRawText())
                "--json prints the same report"
        }

        test "llgbm eval deltas: a teacher whose task is missing is an error; plain eval still needs --model" {
            let root, baseDir, suite, pool = fixture.Force()
            let partial = Path.Combine(root, "partial-suite")

            for name in [ "add-2"; "double" ] do
                TaskDirectory.Save(Path.Combine(partial, name), TaskDirectory.Load(Path.Combine(suite, name)))

            let (code, _, err) =
                llgbm [ "eval"; "deltas"; "--base"; baseDir; "--teachers"; pool; "--tasks"; partial ]

            Expect.equal code 2 "input error"
            Expect.stringContains err "mix-add-2+reverse, reverse, upper" "names the missing tasks"
            let (code, _, err) = llgbm [ "eval"; "--tasks"; suite ]
            Expect.notEqual code 0 "eval without --model"
            Expect.stringContains err "--model" "names the option"
        }
    ]
