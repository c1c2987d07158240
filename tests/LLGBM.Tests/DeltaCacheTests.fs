module LLGBM.Tests.DeltaCacheTests

open System
open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Lora
open LLGBM.Tasks.Synthetic
open LLGBM.Teachers
open LLGBM.Text
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels

/// A tiny base (random weights, byte tokenizer) and a teacher pool of 2 tasks × 2 kept adapters, built once.
let private fixture =
    lazy
        (let root = TestPools.tempRoot "llgbm-dc"
         let baseDir, suite = TestPools.tinyBaseAndSuite root
         let pool = TestPools.trainPool root baseDir suite 6 [| "upper"; "add-2" |]
         root, baseDir, pool)

let private probes = ProbeSet.Generic 2
let private spec = DeltaSpec(MaxProbeLength = 48)

let private fresh (root: string) name =
    Path.Combine(root, name + "-" + Guid.NewGuid().ToString("N"))

let rec private copyDir (source: string) (target: string) =
    Directory.CreateDirectory target |> ignore

    for f in Directory.GetFiles source do
        File.Copy(f, Path.Combine(target, Path.GetFileName f))

    for d in Directory.GetDirectories source do
        copyDir d (Path.Combine(target, Path.GetFileName d))

/// The pool's kept adapters (relative directories), in task then step order.
let private adapters pool =
    TeacherPool.ReadManifest pool
    |> Seq.collect (fun m -> m.Checkpoints)
    |> Seq.sortBy (fun c -> c.Task, c.Step)
    |> Seq.map (fun c -> c.Adapter)
    |> List.ofSeq

/// Δ of each adapter directory, computed here with the embedder on the PEFT-loaded adapter.
let private expected baseDir (probeSet: ProbeSet) (deltaSpec: DeltaSpec) (dirs: string list) =
    use model = Qwen2Checkpoint.Load baseDir
    model.eval () |> ignore

    use embedder =
        new DeltaEmbedder(model, probeSet.Tokenize(Tokenizers.Load baseDir), deltaSpec)

    [
        for dir in dirs ->
            let struct (_, lora) = PeftAdapter.Load(dir, model.Config)
            use lora = lora
            use delta = embedder.ComputeNoGrad lora
            delta.data<float32>().ToArray()
    ]

let private l2 (values: float32 array) =
    values |> Array.sumBy (fun v -> float v * float v) |> sqrt

let private values (d: LoadedDelta) = d.Delta.data<float32>().ToArray()

let private expectClose (actual: float32 array) (wanted: float32 array) message =
    Expect.equal actual.Length wanted.Length $"{message}: dimension"

    for i in 0 .. actual.Length - 1 do
        Expect.floatClose Accuracy.medium (float actual[i]) (float wanted[i]) $"{message}: element {i}"

let private entryFiles cache =
    Directory.GetFiles(Path.Combine(cache, DeltaCache.DeltasFolder))
    |> Array.sort
    |> Array.map (fun f -> f, File.GetLastWriteTimeUtc f)

[<Tests>]
let tests =
    testSequenced
    <| testList "DeltaCache" [
        test "Compute: one entry per kept adapter, each the embedder's delta of the loaded adapter; Load returns them" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"
            let result = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            let dirs = adapters pool
            Expect.equal dirs.Length 4 "2 tasks x 2 adapters"
            Expect.equal result.Computed 4 "all computed"
            Expect.equal result.Reused 0 "none cached"
            Expect.sequenceEqual (result.Manifest |> Seq.map (fun e -> e.Adapter)) dirs "manifest lists every adapter"
            Expect.equal (result.Manifest |> Seq.map (fun e -> e.Key) |> Seq.distinct |> Seq.length) 4 "distinct keys"
            Expect.equal (entryFiles cache).Length 4 "one file per adapter"

            let wanted =
                expected baseDir probes spec (dirs |> List.map (fun d -> Path.Combine(pool, d)))

            let loaded = DeltaCache.Load(cache, baseDir, probes, spec)

            try
                Expect.sequenceEqual (loaded |> Seq.map (fun d -> d.Adapter)) dirs "Load: manifest order"

                for (d, w), e in Seq.zip (Seq.zip loaded wanted) result.Manifest do
                    expectClose (values d) w d.Adapter
                    Expect.floatClose Accuracy.medium e.Norm (l2 w) $"{d.Adapter}: norm"
                    Expect.equal d.Task e.Task "task"
                    Expect.equal d.Step e.Step "step"
            finally
                for d in loaded do
                    d.Dispose()

            use reader =
                SafetensorsReader.Open(DeltaCache.EntryPath(cache, result.Manifest[0].Key))

            Expect.equal reader.Metadata["task"] result.Manifest[0].Task "metadata: task"
            Expect.equal reader.Metadata["adapter"] dirs[0] "metadata: adapter"
            Expect.equal reader.Metadata["spec_sha256"] (ContentHash.OfText(spec.Key())) "metadata: spec hash"
            Expect.equal reader.Metadata["base_sha256"] (ContentHash.OfCheckpoint baseDir) "metadata: base hash"

            // a rerun reuses everything and writes no entry
            let before = entryFiles cache
            let again = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            Expect.equal again.Computed 0 "rerun computes nothing"
            Expect.equal again.Reused 4 "rerun reuses all"
            Expect.sequenceEqual (entryFiles cache) before "entry files and timestamps unchanged"
        }

        test "Compute: an entry holding NaN (as an older version left) is computed again and replaced, never reused" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"
            let first = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            let broken = first.Manifest[1]
            HostileFiles.poison (DeltaCache.EntryPath(cache, broken.Key)) DeltaCache.TensorName 0L nanf
            let reports = ResizeArray<DeltaCacheProgress>()

            let again =
                DeltaCache.Compute(baseDir, pool, cache, probes, spec, progress = (fun p -> reports.Add p))

            Expect.equal again.Computed 1 "the broken entry is computed again"
            Expect.equal again.Reused 3 "the others are reused"

            Expect.equal
                [ for p in reports -> p.Adapter, p.Reused, p.ReplacedBroken ]
                [
                    for e in first.Manifest -> e.Adapter, e.Key <> broken.Key, e.Key = broken.Key
                ]
                "the progress says which entry was replaced"

            let wanted = expected baseDir probes spec [ Path.Combine(pool, broken.Adapter) ]
            use reader = SafetensorsReader.Open(DeltaCache.EntryPath(cache, broken.Key))
            use delta = reader.Read DeltaCache.TensorName
            expectClose (delta.data<float32>().ToArray()) wanted[0] "the replaced entry"
            Expect.floatClose Accuracy.medium again.Manifest[1].Norm (l2 wanted[0]) "its norm"
        }

        test "Compute: an adapter holding NaN is refused naming its file and tensor; no entry is written for it" {
            let root, baseDir, original = fixture.Force()
            let pool = fresh root "pool"
            copyDir original pool
            let cache = fresh root "cache"
            let first = adapters pool |> List.head
            let weights = Path.Combine(pool, first, PeftAdapter.WeightsFileName)

            let name, numel =
                use reader = SafetensorsReader.Open weights
                let name = reader.Entries.Keys |> Seq.sort |> Seq.head
                name, reader.Entries[name].Shape |> Seq.fold (fun n d -> n * d) 1L

            HostileFiles.poison weights name 0L nanf
            let count = numel.ToString("N0", Globalization.CultureInfo.InvariantCulture)

            Expect.equal
                (errorMessage<NonFiniteException>(fun () ->
                    DeltaCache.Compute(baseDir, pool, cache, probes, spec) |> ignore))
                $"'{weights}': tensor '{name}' holds 1 NaN of {count} values (first at [0, 0]); expected only finite numbers."
                "message"

            Expect.isEmpty (entryFiles cache) "no entry written"
        }

        test "Compute: a changed spec or probe set gives new keys, never a stale entry" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"
            let first = DeltaCache.Compute(baseDir, pool, cache, probes, spec)

            let keys (r: DeltaCacheResult) =
                r.Manifest |> Seq.map (fun e -> e.Key) |> Set.ofSeq

            let mean = DeltaSpec(MaxProbeLength = 48, Pooling = DeltaPooling.MeanOverRealTokens)
            let pooled = DeltaCache.Compute(baseDir, pool, cache, probes, mean)
            Expect.equal pooled.Computed 4 "mean pooling: all recomputed"
            Expect.isEmpty (Set.intersect (keys first) (keys pooled)) "mean pooling: new keys"
            let three = ProbeSet.Generic 3
            let moreProbes = DeltaCache.Compute(baseDir, pool, cache, three, spec)
            Expect.equal moreProbes.Computed 4 "3 probes: all recomputed"
            Expect.isEmpty (Set.intersect (keys first) (keys moreProbes)) "3 probes: new keys"
            Expect.isEmpty (Set.intersect (keys pooled) (keys moreProbes)) "3 probes vs mean pooling"
            let dirs = adapters pool |> List.map (fun d -> Path.Combine(pool, d))
            let wanted = expected baseDir probes mean dirs
            let loaded = DeltaCache.Load(cache, baseDir, probes, mean)

            try
                for d, w in Seq.zip loaded wanted do
                    expectClose (values d) w $"mean pooling {d.Adapter}"
            finally
                for d in loaded do
                    d.Dispose()
        }

        test
            "Compute: a re-saved adapter gets a new key and is the only one recomputed; a zero adapter is flagged broken" {
            let root, baseDir, original = fixture.Force()
            let pool = fresh root "pool"
            copyDir original pool
            let cache = fresh root "cache"
            let first = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            let dirs = adapters pool
            use model = Qwen2Checkpoint.Load baseDir
            let scaledDir = Path.Combine(pool, dirs[1])

            do
                let struct (config, lora) = PeftAdapter.Load(scaledDir, model.Config)
                use lora = lora
                use _ = torch.no_grad ()

                for KeyValue(_, m) in lora.Modules do
                    use two = torch.tensor 2.0f
                    m.B.mul_ two |> ignore

                PeftAdapter.Save(scaledDir, config, lora)

            let second = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            Expect.equal second.Computed 1 "only the re-saved adapter is recomputed"
            Expect.equal second.Reused 3 "the others are reused"

            for i in 0..3 do
                if i = 1 then
                    Expect.notEqual second.Manifest[i].Key first.Manifest[i].Key "re-saved: new key"
                else
                    Expect.equal second.Manifest[i].Key first.Manifest[i].Key $"adapter {i}: same key"

            let wantedScaled = expected baseDir probes spec [ scaledDir ]
            Expect.floatClose Accuracy.medium second.Manifest[1].Norm (l2 wantedScaled[0]) "re-saved: its new delta"
            Expect.isEmpty second.Stats.Broken "no broken adapter yet"

            // plant an untrained adapter (B = 0): its delta is 0
            let zeroDir = Path.Combine(pool, dirs[2])

            do
                let struct (config, trained) = PeftAdapter.Load(zeroDir, model.Config)
                trained.Dispose()
                use zero = LoraSet.Initialize(config, model.Config, 7L)
                PeftAdapter.Save(zeroDir, config, zero)

            let third = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            Expect.equal third.Computed 1 "only the planted adapter is recomputed"
            Expect.equal third.Manifest[2].Norm 0.0 "zero adapter: zero delta"
            Expect.sequenceEqual (third.Stats.Broken |> Seq.map (fun e -> e.Adapter)) [ dirs[2] ] "flagged broken"
            let norms = third.Manifest |> Seq.map (fun e -> e.Norm) |> Array.ofSeq
            Expect.equal third.Stats.Count 4 "count"
            Expect.floatClose Accuracy.high third.Stats.MeanNorm (Array.average norms) "mean"
            Expect.equal third.Stats.MinNorm 0.0 "min"
            Expect.equal third.Stats.MaxNorm (Array.max norms) "max"
        }

        test
            "Compute with the delta meaning: the meaning embedder's deltas, keyed apart from activations and by the pairs" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"

            let pairs =
                MeaningProbeSet.FromPairs("pairs", [ MeaningProbe("047 =", " 050"); MeaningProbe("kqzm ->", " KQZM") ])

            let measure = DeltaMeasure.Meaning pairs
            let activation = DeltaCache.Compute(baseDir, pool, cache, probes, spec)
            let meaning = DeltaCache.Compute(baseDir, pool, cache, measure)
            Expect.equal meaning.Computed 4 "all computed"

            let keys (r: DeltaCacheResult) =
                r.Manifest |> Seq.map (fun e -> e.Key) |> Set.ofSeq

            Expect.isEmpty (Set.intersect (keys activation) (keys meaning)) "meaning keys differ from activation keys"
            let dirs = adapters pool
            use model = Qwen2Checkpoint.Load baseDir
            model.eval () |> ignore
            use embedder = new MeaningDeltaEmbedder(model, Tokenizers.Load baseDir, pairs)
            let loaded = DeltaCache.Load(cache, baseDir, measure)

            try
                Expect.sequenceEqual (loaded |> Seq.map (fun d -> d.Adapter)) dirs "manifest order"

                for d in loaded do
                    let struct (_, lora) = PeftAdapter.Load(Path.Combine(pool, d.Adapter), model.Config)
                    use lora = lora
                    use wanted = embedder.ComputeNoGrad lora
                    Expect.equal d.Delta.shape [| 2L |] "one coordinate per pair"
                    expectClose (values d) (wanted.data<float32>().ToArray()) d.Adapter
            finally
                for d in loaded do
                    d.Dispose()

            use reader =
                SafetensorsReader.Open(DeltaCache.EntryPath(cache, meaning.Manifest[0].Key))

            Expect.equal reader.Metadata["kind"] "meaning" "metadata: kind"
            Expect.equal reader.Metadata["spec"] "kind=meaning;norm=bytes;maxlen=256" "metadata: spec"
            Expect.equal (DeltaCache.Compute(baseDir, pool, cache, measure)).Computed 0 "rerun computes nothing"

            let otherContinuation =
                DeltaMeasure.Meaning(
                    MeaningProbeSet.FromPairs(
                        "pairs",
                        [ MeaningProbe("047 =", " 051"); MeaningProbe("kqzm ->", " KQZM") ]
                    )
                )

            let tokens =
                DeltaMeasure.Meaning(pairs, MeaningDeltaSpec(Normalization = Evaluation.LengthNormalization.Tokens))

            for other, what in [ otherContinuation, "another continuation"; tokens, "token normalisation" ] do
                let result = DeltaCache.Compute(baseDir, pool, cache, other)
                Expect.equal result.Computed 4 $"{what}: all recomputed"
                Expect.isEmpty (Set.intersect (keys meaning) (keys result)) $"{what}: new keys"
        }

        test "DeltaNormStats: median, robust outliers and broken deltas" {
            let entry i norm =
                DeltaCacheEntry($"t{i}", "d", i, $"a{i}", $"k{i}", norm)

            // norms 0, 1, 1.1, 1.2, 10: median 1.1; |x - 1.1| = 1.1, 0.1, 0, 0.1, 8.9 -> MAD 0.1, robust deviation 0.14826
            let entries = [ entry 0 0.0; entry 1 1.0; entry 2 1.1; entry 3 1.2; entry 4 10.0 ]
            let stats = DeltaNormStats.Of entries
            Expect.equal stats.MedianNorm 1.1 "median"
            Expect.floatClose Accuracy.high stats.MeanNorm 2.66 "mean"
            Expect.sequenceEqual (stats.Outliers |> Seq.map (fun e -> e.Task)) [ "t0"; "t4" ] "outliers: 0 and 10"
            Expect.sequenceEqual (stats.Broken |> Seq.map (fun e -> e.Task)) [ "t0" ] "broken: the zero delta"
            let tiny = DeltaNormStats.Of [ entry 0 1e-7; entry 1 1.0; entry 2 1.0 ]
            Expect.sequenceEqual (tiny.Broken |> Seq.map (fun e -> e.Task)) [ "t0" ] "1e-7 < 1e-6 x median 1"
            Expect.isEmpty tiny.Outliers "MAD 0: no outliers flagged"
            Expect.equal (DeltaNormStats.Of []).Count 0 "empty"
        }

        test "Compute: shards 0/2 and 1/2 together give the entries of one run" {
            let root, baseDir, pool = fixture.Force()
            let whole = fresh root "cache"
            let sharded = fresh root "cache"
            let one = DeltaCache.Compute(baseDir, pool, whole, probes, spec)
            let s0 = DeltaCache.Compute(baseDir, pool, sharded, probes, spec, 0, 2)
            let dirs = adapters pool

            Expect.sequenceEqual
                (s0.Shard |> Seq.map (fun e -> e.Adapter))
                [ dirs[0]; dirs[2] ]
                "shard 0: adapters 0 and 2"

            Expect.equal s0.Manifest.Count 2 "manifest after shard 0"
            let s1 = DeltaCache.Compute(baseDir, pool, sharded, probes, spec, 1, 2)
            Expect.sequenceEqual (s1.Shard |> Seq.map (fun e -> e.Adapter)) [ dirs[1]; dirs[3] ] "shard 1"
            Expect.equal s1.Computed 2 "shard 1 computes its own"
            Expect.sequenceEqual s1.Manifest one.Manifest "same manifest as one run"

            for e in one.Manifest do
                Expect.equal
                    (File.ReadAllBytes(DeltaCache.EntryPath(sharded, e.Key)))
                    (File.ReadAllBytes(DeltaCache.EntryPath(whole, e.Key)))
                    $"{e.Adapter}: same entry file"
        }

        test "llgbm deltas compute: prints the stats table and fills the cache; --shard and bad options" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"

            let args extra = [
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
                yield! extra
            ]

            let (code, out, err) = llgbm (args [ "--pooling"; "mean" ])
            Expect.equal code 0 err
            Expect.stringContains out "4 deltas (generic-2" "summary line"
            Expect.stringContains out "0 broken" "no broken adapters"
            Expect.stringContains out "4 computed, 0 cached" "computed"
            Expect.stringContains err "4/4" "progress"
            let mean = DeltaSpec(Pooling = DeltaPooling.MeanOverRealTokens)
            Expect.equal (DeltaCache.ReadManifest(cache, baseDir, probes, mean)).Count 4 "manifest of the CLI's context"
            let (code, out, err) = llgbm (args [ "--pooling"; "mean"; "--shard"; "1/2" ])
            Expect.equal code 0 err
            Expect.stringContains out "shard 1/2: 0 computed, 2 cached" "shard rerun"
            let (code, _, err) = llgbm (args [ "--shard"; "2/2" ])
            Expect.notEqual code 0 "bad shard"
            Expect.stringContains err "--shard 2/2" "names the option"
        }

        test
            "llgbm deltas compute --kind meaning --probe-tasks: the task-answer pairs' meaning deltas, in their own manifest" {
            let root, baseDir, pool = fixture.Force()
            let cache = fresh root "cache"
            let suite = Path.Combine(root, "suite")

            let (code, out, err) =
                llgbm [
                    "deltas"
                    "compute"
                    "--base"
                    baseDir
                    "--teachers"
                    pool
                    "--out"
                    cache
                    "--kind"
                    "meaning"
                    "--probe-tasks"
                    suite
                    "--per-task"
                    "1"
                ]

            Expect.equal code 0 err
            Expect.stringContains out "kind=meaning" "summary names the kind"
            Expect.stringContains out "4 computed, 0 cached" "computed"
            let pairs = MeaningProbeSet.FromTasks(LLGBM.Tasks.TaskSuite.LoadAll suite, 1, 0L)
            let loaded = DeltaCache.Load(cache, baseDir, DeltaMeasure.Meaning pairs)

            try
                Expect.equal loaded.Count 4 "every adapter"

                for d in loaded do
                    Expect.equal d.Delta.shape [| int64 pairs.Count |] "one coordinate per task pair"
            finally
                for d in loaded do
                    d.Dispose()

            Expect.throwsT<LlgbmException>
                (fun () -> DeltaCache.ReadManifest(cache, baseDir, probes, spec) |> ignore)
                "no activation manifest was written"

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
                    "--kind"
                    "meaning"
                    "--layers"
                    "-1"
                ]

            Expect.equal code 2 "activation option with --kind meaning"
            Expect.stringContains err "--layers" "names the option"
        }
    ]
