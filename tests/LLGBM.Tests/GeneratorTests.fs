module LLGBM.Tests.GeneratorTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Generators
open LLGBM.Lora
open LLGBM.Tasks
open LLGBM.Tests.TestModels

let private float64Of (t: torch.Tensor) =
    use t = t
    use wide = t.to_type torch.float64
    wide.item<float>()

/// A batched low-rank set over q_proj of layers 0..(modules - 1) of `config`: N adapters of rank r, float64.
let private batchedSet
    (config: LLGBM.Model.Qwen2Config)
    (seed: uint64)
    (n: int64)
    (rank: int64)
    (modules: int)
    (scale: float)
    =
    let g = new torch.Generator(seed)

    let d =
        readOnlyDict [
            for layer in 0 .. modules - 1 ->
                let path = LoraTarget.Path(layer, "q_proj")
                let struct (o, i) = LoraSet.ShapeOf(config, path)

                path,
                LoraModule.LowRank(
                    torch.randn ([| n; rank; i |], generator = g, dtype = torch.float64),
                    torch.randn ([| n; o; rank |], generator = g, dtype = torch.float64),
                    scale
                )
        ]

    new LoraSet(d, true)

/// ΔW of every module of adapter n, flattened and concatenated (formed explicitly).
let private flatDelta (set: LoraSet) (n: int64) = [|
    for KeyValue(_, m) in set.Modules |> Seq.sortBy (fun p -> p.Key) do
        use w = torch.matmul (m.B[n], m.A[n]) * m.Scale
        yield! w.data<float>().ToArray()
|]

let private dot (x: float array) (y: float array) =
    Array.fold2 (fun s a b -> s + a * b) 0.0 x y

/// A deterministic text encoder for tests: counts of each byte value mod 16 and of each character class, scaled
/// (independent of the library; it only has to tell texts apart).
let private testEncode (texts: IReadOnlyList<string>) =
    let rows = [|
        for text in texts do
            let v = Array.zeroCreate<float32> 24

            for c in text do
                v[int c % 16] <- v[int c % 16] + 1.0f

                if Char.IsDigit c then
                    v[16 + (int c - int '0') % 8] <- v[16 + (int c - int '0') % 8] + 1.0f

            yield! v |> Array.map (fun x -> x / float32 (max 1 text.Length))
    |]

    torch.tensor(rows).reshape(int64 texts.Count, 24L)

let private microLora =
    LoraConfig(Rank = 2, Alpha = 4.0, TargetModules = [| "q_proj"; "v_proj"; "gate_proj"; "down_proj" |])

let private generatorOf (config: GeneratorConfig) (dim: int) =
    new HyperMlpGenerator(config, microLora, Qwen2Presets.Micro, dim, config.Seed)

[<Tests>]
let unitTests =
    testList "Generator" [
        test "WeightLosses.RelativeDeltaWeight equals Σ‖ΔŴ − ΔW‖² / Σ‖ΔW‖² formed explicitly, per adapter then averaged" {
            let config = Qwen2Presets.Micro
            use g = batchedSet config 1UL 3L 2L 2 1.5
            use t = batchedSet config 2UL 3L 2L 2 1.5

            let expected =
                [ 0L .. 2L ]
                |> List.averageBy (fun n ->
                    let x = flatDelta g n
                    let y = flatDelta t n
                    let diff = Array.map2 (-) x y
                    dot diff diff / dot y y)

            Expect.floatClose
                { absolute = 1e-9; relative = 1e-9 }
                (float64Of (WeightLosses.RelativeDeltaWeight(g, t)))
                expected
                "relative ΔW error"
        }

        test "WeightLosses.RelativeDeltaWeight is 0 against itself and under a change of gauge, 1 for a zero adapter" {
            let config = Qwen2Presets.Micro
            use t = batchedSet config 3UL 2L 3L 2 2.0
            Expect.floatClose Accuracy.high (float64Of (WeightLosses.RelativeDeltaWeight(t, t))) 0.0 "itself"
            // A → G A, B → B G⁻¹ leaves B A unchanged.
            let gauge =
                torch.tensor([| 2.0; 1.0; 0.0; 0.0; 0.5; 0.0; 1.0; 0.0; 1.0 |]).reshape(3L, 3L)

            let inverse = torch.linalg.inv gauge

            let moved =
                new LoraSet(
                    readOnlyDict [
                        for KeyValue(path, m) in t.Modules ->
                            path, LoraModule.LowRank(torch.matmul (gauge, m.A), torch.matmul (m.B, inverse), m.Scale)
                    ],
                    true
                )

            Expect.isLessThan (float64Of (WeightLosses.RelativeDeltaWeight(moved, t))) 1e-20 "gauge-invariant"

            let zero =
                new LoraSet(
                    readOnlyDict [
                        for KeyValue(path, m) in t.Modules ->
                            path, LoraModule.LowRank(torch.zeros_like m.A, m.B.clone (), m.Scale)
                    ],
                    true
                )

            Expect.floatClose Accuracy.high (float64Of (WeightLosses.RelativeDeltaWeight(zero, t))) 1.0 "zero adapter"
        }

        test "AdapterGram.Of equals the inner products of the flattened ΔW" {
            let config = Qwen2Presets.Micro
            use set = batchedSet config 4UL 4L 3L 2 0.7
            let gram = AdapterGram.Of set
            let flats = [| for n in 0L .. 3L -> flatDelta set n |]

            for i in 0..3 do
                for j in 0..3 do
                    Expect.floatClose
                        { absolute = 1e-9; relative = 1e-9 }
                        gram[i, j]
                        (dot flats[i] flats[j])
                        $"G[{i}, {j}]"
        }

        test
            "ConditionSensitivity.Of: hand-computed figures, and a generator that ignores the condition scores spread 0" {
            // One-dimensional "adapters" 0, 1 (task a) and 10, 11 (task b): G[i, j] = x_i x_j.
            let xs = [| 0.0; 1.0; 10.0; 11.0 |]
            let gram = Array2D.init 4 4 (fun i j -> xs[i] * xs[j])
            let s = ConditionSensitivity.Of(gram, [| "a"; "a"; "b"; "b" |])
            Expect.floatClose Accuracy.high s.Within 1.0 "within: |0-1| and |10-11|"
            Expect.floatClose Accuracy.high s.Across 10.0 "across: mean of 10, 11, 9, 10"
            Expect.floatClose Accuracy.high s.Ratio 10.0 "ratio"
            Expect.floatClose Accuracy.high s.MeanNorm 5.5 "mean norm"
            Expect.floatClose Accuracy.high s.RelativeSpread (10.0 / 5.5) "spread"
            let same = Array2D.create 4 4 4.0
            let collapsed = ConditionSensitivity.Of(same, [| "a"; "a"; "b"; "b" |])
            Expect.equal collapsed.RelativeSpread 0.0 "identical adapters: no spread"
            Expect.isTrue (Double.IsNaN collapsed.Ratio) "ratio undefined when nothing varies"
        }

        test "LossWeight.At: constant, and a linear ramp between its steps" {
            Expect.equal ((LossWeight.Constant 0.3).At 17) 0.3 "constant"

            let ramp =
                LossWeight(Value = 1.0, Start = 0.2, Schedule = LossScheduleKind.Linear, RampFrom = 10, RampTo = 20)

            Expect.equal (ramp.At 0) 0.2 "before"
            Expect.floatClose Accuracy.high (ramp.At 15) 0.6 "halfway"
            Expect.equal (ramp.At 25) 1.0 "after"
        }

        test "GeneratorConfig.Load: an unknown key or a bad value is an error naming the file and the field" {
            SafetensorsTests.Kit.withTempDir (fun dir ->
                let file = Path.Combine(dir, "bad.json")
                File.WriteAllText(file, """{"name": "x", "lamda_delta": 1}""")

                let message =
                    errorMessage<LlgbmException>(fun () -> GeneratorConfig.Load file |> ignore)

                Expect.stringContains message file "names the file"
                Expect.stringContains message "lamda_delta" "names the key"
                File.WriteAllText(file, """{"weight": {"value": 0}, "delta": {"value": 0}}""")

                let message =
                    errorMessage<LlgbmException>(fun () -> GeneratorConfig.Load file |> ignore)

                Expect.stringContains message "nothing would train" "all-zero objective")
        }

        test "The configs under configs/ load, and name the variants they claim" {
            let root = Repository.root

            let load name =
                GeneratorConfig.Load(Path.Combine(root, "configs", name + ".json"))

            let dnd = load "dnd-weight"
            Expect.isTrue dnd.Delta.IsOff "dnd-weight: λ_δ = 0"
            Expect.isFalse dnd.Weight.IsOff "dnd-weight: λ_w > 0"
            let multi = load "multitask"
            Expect.isFalse multi.Delta.IsOff "multitask: λ_δ > 0"
            Expect.isFalse multi.Weight.IsOff "multitask: λ_w > 0"
            let deltaOnly = load "delta-only"
            Expect.isTrue deltaOnly.Weight.IsOff "delta-only: λ_w = 0"
            Expect.isFalse deltaOnly.Norm.IsOff "delta-only: norm penalty on"
        }

        test
            "HyperMlpGenerator emits a batched set that fits the model, one adapter per condition, differing with the condition" {
            let config = GeneratorConfig(HiddenSize = 32, EmbeddingSize = 8, Seed = 5L)
            use gen = generatorOf config 6

            use conditions =
                torch.randn ([| 3L; 4L; 6L |], generator = new torch.Generator(6UL))

            use set = gen.Generate conditions
            set.ValidateFor(Qwen2Presets.Micro) |> ignore
            Expect.equal set.Count 3L "three adapters"
            Expect.equal set.Modules.Count (4 * Qwen2Presets.Micro.NumHiddenLayers) "every targeted module"
            let q = set.Get(LoraTarget.Path(1, "q_proj"))
            Expect.sequenceEqual q.A.shape [| 3L; 2L; 32L |] "A [N, r, in]"
            Expect.equal q.Scale 2.0 "alpha / r"
            let gram = AdapterGram.Of set
            Expect.isGreaterThan (AdapterGram.Distance(gram, 0, 1)) 1e-6 "different conditions, different adapters"
        }

        test
            "HyperMlpGenerator reads the whole prompt batch: the order of the K prompts does not matter, any one prompt does" {
            let config = GeneratorConfig(HiddenSize = 32, EmbeddingSize = 8, Seed = 5L)
            use gen = generatorOf config 6
            use c = torch.randn ([| 1L; 5L; 6L |], generator = new torch.Generator(7UL))
            use permuted = c.index_select (1L, torch.tensor [| 4L; 2L; 0L; 3L; 1L |])
            use changed = c.clone ()
            changed[0, 3].add_(torch.ones 6L) |> ignore
            use both = torch.cat ([| c; permuted; changed |], 0L)
            use set = gen.Generate both
            let gram = AdapterGram.Of set
            Expect.isLessThan (AdapterGram.Distance(gram, 0, 1) / sqrt gram[0, 0]) 1e-5 "permutation-invariant"
            Expect.isGreaterThan (AdapterGram.Distance(gram, 0, 2) / sqrt gram[0, 0]) 1e-4 "the fourth prompt matters"
        }

        test "The weight term alone and the delta term alone each give non-zero gradients to every generator parameter" {
            let config = GeneratorConfig(HiddenSize = 32, EmbeddingSize = 8, Seed = 5L)
            use model = micro 11L
            model.eval () |> ignore

            for p in model.parameters () do
                p.requires_grad <- false

            use embedder =
                new DeltaEmbedder(model, [| [| 1; 2; 3 |] :> IReadOnlyList<int>; [| 4; 5 |] |], DeltaSpec.Default)

            let teacherOf (seed: uint64) =
                let g = new torch.Generator(seed)

                new LoraSet(
                    readOnlyDict [
                        for path in microLora.Paths(Qwen2Presets.Micro.NumHiddenLayers) ->
                            let struct (o, i) = LoraSet.ShapeOf(Qwen2Presets.Micro, path)

                            path,
                            LoraModule.LowRank(
                                torch.randn ([| 2L; 2L; i |], generator = g) * 0.3,
                                torch.randn ([| 2L; o; 2L |], generator = g) * 0.3,
                                2.0
                            )
                    ],
                    true
                )

            use teacher = teacherOf 12UL
            use target = embedder.ComputeBatched teacher

            let check name (loss: LoraSet -> torch.Tensor) =
                use gen = generatorOf config 6
                use c = torch.randn ([| 2L; 4L; 6L |], generator = new torch.Generator(13UL))
                use set = gen.Generate c
                use l = loss set
                l.backward ()

                for struct (pname, p) in gen.named_parameters () do
                    Expect.isNotNull p.grad $"{name}: {pname} has a gradient"
                    use n = p.grad.abs().sum()
                    Expect.isGreaterThan (n.item<float32>()) 0.0f $"{name}: {pname} gradient is non-zero"

            check "weight" (fun set -> WeightLosses.RelativeDeltaWeight(set, teacher))

            check "delta" (fun set ->
                GeneratorTrainer.DeltaTerm(DeltaLossKind.RelativeMse, embedder.ComputeBatched set, target))
        }
    ]
