module LLGBM.Tests.MergeCommandTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

let private rank = 4L
let private scale = 2.0

/// A micro base checkpoint and two random rank-4 adapters for it (scale 2) that name it as their base.
let private setUp root =
    let baseDir = Path.Combine(root, "base")

    let (code, _, err) =
        llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; baseDir; "--seed"; "5" ]

    Expect.equal code 0 err

    let adapters = [
        for seed in [ 31L; 32L ] ->
            let dir = Path.Combine(root, $"adapter-{seed}")
            use lora = randomLora Qwen2Presets.Micro seed rank 0.3 scale everyModule
            PeftAdapter.Save(dir, LoraConfig(Rank = int rank, Alpha = float rank * scale), lora, baseDir)
            dir
    ]

    baseDir, adapters

/// Each module's ΔW of a PEFT adapter by a naive loop (scale · B · A), keyed by path.
let private naiveDeltas (dir: string) =
    let struct (_, lora) = PeftAdapter.Load(dir, Qwen2Presets.Micro)
    use lora = lora

    Map.ofSeq [
        for KeyValue(path, m) in lora.Modules ->
            let struct (o, i) = LoraSet.ShapeOf(Qwen2Presets.Micro, path)
            let a = (nonNull m.A).data<float32>().ToArray() |> wide
            let b = (nonNull m.B).data<float32>().ToArray() |> wide
            path, matmul (int o) (int m.Rank) (int i) b a |> Array.map (fun x -> m.Scale * x)
    ]

/// The modules' ΔW concatenated in ordinal path order.
let private flat (deltas: Map<string, float[]>) =
    deltas
    |> Map.toArray
    |> Array.sortWith (fun (a, _) (b, _) -> String.CompareOrdinal(a, b))
    |> Array.collect snd

/// The flat vector cut back into modules shaped like `like`.
let private unflat (like: Map<string, float[]>) (values: float[]) =
    let paths =
        like
        |> Map.toArray
        |> Array.map fst
        |> Array.sortWith (fun a b -> String.CompareOrdinal(a, b))

    let mutable offset = 0

    Map.ofSeq [
        for p in paths ->
            let n = like[p].Length
            let piece = values[offset .. offset + n - 1]
            offset <- offset + n
            p, piece
    ]

/// A LoRA set of dense modules from ΔW arrays.
let private denseSet (deltas: Map<string, float[]>) =
    let modules =
        readOnlyDict [
            for KeyValue(path, values) in deltas ->
                let struct (o, i) = LoraSet.ShapeOf(Qwen2Presets.Micro, path)
                path, LoraModule.Dense(torch.tensor(Array.map float32 values).reshape(o, i))
        ]

    new LoraSet(modules, true)

/// The logits of the base checkpoint with `lora` applied, on fixed ids.
let private logits (baseDir: string) (lora: LoraSet) =
    use model = Qwen2Checkpoint.Load baseDir
    model.eval ()
    use ids = randomIds 9L model.Config.VocabSize 2 6
    use _ = torch.no_grad ()
    use out = model.Forward(ids, ForwardOptions(Lora = lora))
    (nonNull out.Logits).clone()

let private relative (x: float[]) (y: float[]) =
    sqrt (Array.fold2 (fun acc a b -> acc + (a - b) * (a - b)) 0.0 x y)
    / sqrt (Array.sumBy (fun a -> a * a) x)

/// The relative reconstruction error the command printed.
let private reportedError (out: string) =
    let m = Regex.Match(out, @"‖ΔW − B·A‖/‖ΔW‖ ([0-9.Ee+-]+)")
    Expect.isTrue m.Success $"the error is reported: {out}"
    Double.Parse(m.Groups[1].Value, Globalization.CultureInfo.InvariantCulture)

let private merge args = llgbm ("merge" :: args)

[<Tests>]
let tests =
    testList "MergeCommand" [
        test "merge --method linear at full rank loads back and applies as the dense average ΔW" {
            withTempDir (fun root ->
                let (baseDir, adapters) = setUp root
                let out = Path.Combine(root, "linear")

                let (code, stdout, err) =
                    merge ([ "--method"; "linear"; "--rank"; "8"; "--out"; out; "--adapters" ] @ adapters)

                Expect.equal code 0 err
                Expect.isLessThan (reportedError stdout) 1e-5 "two rank-4 adapters average to rank ≤ 8: exact"
                let deltas = adapters |> List.map naiveDeltas

                let average =
                    weightedAverage [| 1.0; 1.0 |] (deltas |> List.map flat |> Array.ofList)

                let struct (config, merged) = PeftAdapter.Load(out, Qwen2Presets.Micro)
                use merged = merged
                Expect.equal config.Rank 8 "r"
                use dense = denseSet (unflat deltas[0] average)
                use viaAdapter = logits baseDir merged
                use viaDense = logits baseDir dense
                use plain = logits baseDir (new LoraSet(readOnlyDict [], true))
                Expect.isLessThan (maxAbsDiff viaAdapter viaDense) 1e-4 "the written adapter = the dense merged ΔW"
                Expect.isGreaterThan (maxAbsDiff viaAdapter plain) 1e-3 "and changes the model")
        }

        test "merge --method ties truncates by SVD and reports the error it makes; at full rank it is exact" {
            withTempDir (fun root ->
                let (baseDir, adapters) = setUp root
                let deltas = adapters |> List.map naiveDeltas
                let expected = ties 0.2 (deltas |> List.map flat |> Array.ofList)

                let low = Path.Combine(root, "ties-2")

                let (code, stdout, err) =
                    merge ([ "--method"; "ties"; "--rank"; "2"; "--out"; low; "--adapters" ] @ adapters)

                Expect.equal code 0 err
                let reported = reportedError stdout
                Expect.isGreaterThan reported 0.05 "rank 2 cannot hold a TIES merge"
                let measured = relative expected (flat (naiveDeltas low))

                Expect.floatClose
                    { absolute = 1e-4; relative = 1e-3 }
                    measured
                    reported
                    "reported = ‖TIES − B·A‖ / ‖TIES‖"

                let full = Path.Combine(root, "ties-full")

                let (code, stdout, err) =
                    merge ([ "--method"; "ties"; "--rank"; "32"; "--out"; full; "--adapters" ] @ adapters)

                Expect.equal code 0 err
                Expect.isLessThan (reportedError stdout) 1e-5 "rank 32 = min(out, in) of every module"
                expectClose 1e-5 (flat (naiveDeltas full)) expected "ΔW = the naive TIES merge"
                let struct (_, merged) = PeftAdapter.Load(full, Qwen2Presets.Micro)
                use merged = merged
                use dense = denseSet (unflat deltas[0] expected)
                use viaAdapter = logits baseDir merged
                use viaDense = logits baseDir dense
                Expect.isLessThan (maxAbsDiff viaAdapter viaDense) 1e-4 "applies as the dense TIES ΔW")
        }

        test "merge --factors merges A and B separately as PEFT does; the default rank is the inputs'" {
            withTempDir (fun root ->
                let (_, adapters) = setUp root
                let out = Path.Combine(root, "peft")

                let (code, stdout, err) =
                    merge (
                        [
                            "--method"
                            "linear"
                            "--factors"
                            "--weights"
                            "1"
                            "3"
                            "--out"
                            out
                            "--adapters"
                        ]
                        @ adapters
                    )

                Expect.equal code 0 err
                Expect.stringContains stdout "A and B merged separately" "says what it did"
                let path = "model.layers.1.mlp.down_proj"

                let factors dir =
                    let struct (_, lora) = PeftAdapter.Load(dir, Qwen2Presets.Micro)
                    use lora = lora
                    let m = lora.Modules[path]

                    (nonNull m.A).data<float32>().ToArray() |> wide,
                    (nonNull m.B).data<float32>().ToArray() |> wide,
                    m.Scale

                let (a1, b1, s1) = factors adapters[0]
                let (a2, b2, s2) = factors adapters[1]
                let (a, b, s) = factors out
                Expect.equal s 1.0 "scale 1"
                let w1, w2 = sqrt (1.0 * s1), sqrt (3.0 * s2)
                expectClose 1e-5 a (Array.map2 (fun x y -> w1 * x + w2 * y) a1 a2) "A = Σ √(w s) A_t"
                expectClose 1e-5 b (Array.map2 (fun x y -> w1 * x + w2 * y) b1 b2) "B = Σ √(w s) B_t")
        }

        test "merge --method dare-ties is seeded; bad input is named" {
            withTempDir (fun root ->
                let (baseDir, adapters) = setUp root

                let run name seed =
                    let out = Path.Combine(root, name)

                    let (code, _, err) =
                        merge (
                            [
                                "--method"
                                "dare-ties"
                                "--density"
                                "0.5"
                                "--seed"
                                seed
                                "--out"
                                out
                                "--adapters"
                            ]
                            @ adapters
                        )

                    Expect.equal code 0 err
                    flat (naiveDeltas out)

                let first = run "d1" "4"
                Expect.sequenceEqual (run "d2" "4") first "same seed, same merge"
                Expect.notEqual (run "d3" "5") first "another seed, another mask"

                let (code, _, err) =
                    merge (
                        [ "--method"; "ties"; "--out"; Path.Combine(root, "d1"); "--adapters" ]
                        @ adapters
                    )

                Expect.equal code 2 "refused"
                Expect.stringContains err "--force" "says how"

                let (code, _, err) =
                    merge (
                        [
                            "--method"
                            "linear"
                            "--weights"
                            "1"
                            "--out"
                            Path.Combine(root, "w")
                            "--adapters"
                        ]
                        @ adapters
                    )

                Expect.equal code 2 "refused"
                Expect.stringContains err "1 weights for 2 task vectors" "weights"

                // An adapter without a usable base_model_name_or_path needs --model.
                let orphan = Path.Combine(root, "orphan")
                use lora = randomLora Qwen2Presets.Micro 40L rank 0.3 scale everyModule
                PeftAdapter.Save(orphan, LoraConfig(Rank = int rank, Alpha = 8.0), lora)

                let (code, _, err) =
                    merge [ "--method"; "linear"; "--out"; Path.Combine(root, "o"); "--adapters"; orphan ]

                Expect.equal code 2 "refused"
                Expect.stringContains err "--model" "asks for the model"

                let (code, _, err) =
                    merge [
                        "--method"
                        "linear"
                        "--model"
                        baseDir
                        "--out"
                        Path.Combine(root, "o")
                        "--adapters"
                        orphan
                    ]

                Expect.equal code 0 err)
        }
    ]
