module LLGBM.Tests.LoraTokenizerTests

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels
open LLGBM.Tests.LoraTokenLayoutTests

/// Factors (path, A [r, in], B [out, r]) for every module of `layout`, drawn from N(0, s²) with a scale s = 2^k,
/// k in -6..2, of the module's own (so that modules differ in magnitude); B is zero when `zeroB`.
let private randomFactors (layout: LoraTokenLayout) (seed: int64) (zeroB: bool) (dtype: torch.ScalarType) = [
    let g = new torch.Generator(uint64 seed)

    for m in layout.Modules ->
        let s = 2.0 ** float (torch.randint(-6L, 3L, [| 1L |], generator = g).item<int64>())

        let a =
            torch.randn ([| int64 m.Rank; m.InFeatures |], generator = g, dtype = dtype) * s

        let b =
            if zeroB then
                torch.zeros ([| m.OutFeatures; int64 m.Rank |], dtype = dtype)
            else
                torch.randn ([| m.OutFeatures; int64 m.Rank |], generator = g, dtype = dtype)
                * s

        m.Path, a, b
]

/// A set over the factors with the layout's scales; it owns the factors.
let private setOf (layout: LoraTokenLayout) (factors: (string * torch.Tensor * torch.Tensor) list) =
    let modules =
        readOnlyDict [
            for (path, a, b) in factors -> path, LoraModule.LowRank(a, b, layout.Module(path).Scale)
        ]

    new LoraSet(modules, true)

/// The set of N adapters stacking the factors of the given single sets; it owns the stacked tensors.
let private stacked (sets: LoraSet list) =
    let first = List.head sets

    let modules =
        readOnlyDict [
            for KeyValue(path, m) in first.Modules ->
                let a = torch.stack [ for s in sets -> s.Modules[path].A ]
                let b = torch.stack [ for s in sets -> s.Modules[path].B ]
                path, LoraModule.LowRank(a, b, m.Scale)
        ]

    new LoraSet(modules, true)

/// The rows of a 2-D tensor as float arrays.
let private rows (t: torch.Tensor) =
    use t64 = t.to_type(torch.float64).contiguous()
    t64.data<float>().ToArray() |> Array.chunkBySize (int t.shape[1])

/// The grid and mask by the letter of the scheme, in float64: modules by layer, then in the order q, k, v, o, gate,
/// up, down; per module the rows of A, then those of Bᵀ (the columns of B); each row cut into chunks of `width`; a
/// token holds the chunk's z-scores (population std; all zero for a constant chunk, whose mean is its value) padded
/// with 0, then the mean and the std. The mask is true on the real values and the two scale channels.
let private naiveTokens (width: int) (set: LoraSet) =
    let order = [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ]

    let key (path: string) =
        let parts = path.Split '.'
        int parts[2], List.findIndex ((=) parts[4]) order

    [
        for path in set.Modules.Keys |> Seq.sortBy key do
            let m = set.Modules[path]

            for factor in [ rows m.A; Array.transpose (rows m.B) ] do
                for row in factor do
                    for chunk in Array.chunkBySize width row do
                        let n = chunk.Length
                        let constant = chunk |> Array.forall ((=) chunk[0])
                        let mean = if constant then chunk[0] else Array.average chunk

                        let std =
                            if constant then
                                0.0
                            else
                                sqrt (chunk |> Array.averageBy (fun x -> (x - mean) * (x - mean)))

                        let z = chunk |> Array.map (fun x -> if constant then 0.0 else (x - mean) / std)
                        let values = Array.append z (Array.zeroCreate (width - n))
                        Array.append values [| mean; std |], Array.init (width + 2) (fun c -> c < n || c >= width)
    ]

/// max |x − y| over the modules' A and B, each divided by the largest |entry| of the original factor (0 when the
/// original is all zero and the copy equal).
let private relativeError (original: LoraSet) (back: LoraSet) =
    let one (x: torch.Tensor) (y: torch.Tensor) =
        let scale = x.abs().max().item<float32>() |> float
        let diff = maxAbsDiff x y
        if scale = 0.0 then diff else diff / scale

    [
        for KeyValue(path, m) in original.Modules do
            let other = back.Modules[path]
            one m.A other.A
            one m.B other.B
    ]
    |> List.max

/// True when the tensors have the same shape and equal entries.
let private same (x: torch.Tensor) (y: torch.Tensor) =
    x.shape = y.shape && (use eq = x.eq y in eq.all().item<bool>())

/// Disposes a tokenisation's grid and mask.
let private release (grid: torch.Tensor, mask: torch.Tensor) =
    grid.Dispose()
    mask.Dispose()

[<Tests>]
let tests =
    testList "LoraTokenizer" [
        testPropertyWithConfig
            (Generators.config 60)
            "round trip within 1e-6 relative in float32; batched grids and sets equal the per-example ones"
        <| Prop.forAll (Arb.fromGen Generators.loraTokenCase) (fun case ->
            let layout = caseLayout case
            let tokenizer = LoraTokenizer(layout)

            let sets = [
                for n in 0 .. case.Count - 1 ->
                    setOf layout (randomFactors layout (case.Seed + int64 n) case.ZeroB torch.float32)
            ]

            use batch = stacked sets

            let grids =
                sets |> List.map (fun s -> let struct (g, m) = tokenizer.Tokenize s in g, m)

            try
                for (set, (grid, mask)) in List.zip sets grids do
                    Expect.sequenceEqual grid.shape (layout.GridShape()) "grid shape [T, C]"
                    Expect.sequenceEqual mask.shape (layout.GridShape()) "mask shape"
                    Expect.equal grid.dtype torch.float32 "the set's dtype"
                    use back = tokenizer.Detokenize grid
                    Expect.isLessThanOrEqual (relativeError set back) 1e-6 "round trip"
                    Expect.equal back.Dropout layout.Dropout "dropout"

                    for KeyValue(path, m) in back.Modules do
                        Expect.equal m.Scale set.Modules[path].Scale $"{path} scale"

                let struct (batchGrid, batchMask) = tokenizer.Tokenize batch
                use batchGrid = batchGrid
                use batchMask = batchMask
                Expect.sequenceEqual batchGrid.shape (layout.GridShape(int64 case.Count)) "batched grid [N, T, C]"
                Expect.sequenceEqual batchMask.shape batchGrid.shape "batched mask"
                use batchBack = tokenizer.Detokenize batchGrid
                Expect.isTrue batchBack.IsBatched "a batched set"

                for (n, (grid, mask)) in List.indexed grids do
                    let scale = max 1.0 (grid.abs().max().item<float32>() |> float)
                    Expect.isLessThanOrEqual (maxAbsDiff batchGrid[int64 n] grid) (1e-6 * scale) $"grid of adapter {n}"
                    Expect.isTrue (same batchMask[int64 n] mask) $"mask of adapter {n}"
                    use single = tokenizer.Detokenize grid

                    for KeyValue(path, m) in single.Modules do
                        let b = batchBack.Modules[path]
                        Expect.isLessThanOrEqual (maxAbsDiff b.A[int64 n] m.A) 1e-7 $"{path} A of adapter {n}"
                        Expect.isLessThanOrEqual (maxAbsDiff b.B[int64 n] m.B) 1e-7 $"{path} B of adapter {n}"
            finally
                grids |> List.iter release
                sets |> List.iter (fun s -> s.Dispose()))

        testPropertyWithConfig (Generators.config 40) "grid and mask agree with the scheme computed by hand (float64)"
        <| Prop.forAll (Arb.fromGen Generators.loraTokenCase) (fun case ->
            let layout = caseLayout case
            use set = setOf layout (randomFactors layout case.Seed case.ZeroB torch.float64)
            let struct (grid, mask) = LoraTokenizer(layout).Tokenize set
            use grid = grid
            use mask = mask
            let expected = naiveTokens case.ChunkWidth set
            Expect.equal (int64 expected.Length) layout.Tokens "token count"
            let gridRows = rows grid
            use maskLong = mask.to_type torch.int64
            let maskRows = rows maskLong

            for (t, (values, real)) in List.indexed expected do
                for c in 0 .. values.Length - 1 do
                    let found = gridRows[t][c]

                    if abs (found - values[c]) > 1e-9 * (1.0 + abs values[c]) then
                        failtestf "token %d channel %d: %g, expected %g" t c found values[c]

                Expect.sequenceEqual (maskRows[t] |> Array.map (fun x -> x = 1.0)) real $"mask of token {t}")

        test "constant chunks: mean is the value, std and z-scores are 0, and they come back exactly" {
            // Micro q_proj [32, 32], r 6, chunks of 31: every row is a chunk of 31 and a chunk of 1 (constant). Rows
            // 0–4 are constant (values whose mean over 31 copies need not round back to the value), row 5 random.
            let constants = [ 0.3f; 0.1f; -2.9f; 1.7f; 1e-3f ]

            let config =
                LoraConfig(Rank = 6, Alpha = 6.0, TargetModules = [| "q_proj" |], Layers = [| 0 |])

            let layout = LoraTokenLayout.For(Qwen2Presets.Micro, config, 31)
            let g = new torch.Generator(3UL)
            use last = torch.randn ([| 1L; 32L |], generator = g)

            use a =
                torch.cat (
                    [| for c in constants -> torch.full ([| 1L; 32L |], c.ToScalar()) |]
                    |> Array.append
                    <| [| last |],
                    0L
                )

            use b = torch.zeros ([| 32L; 6L |])

            use set =
                new LoraSet(readOnlyDict [ "model.layers.0.self_attn.q_proj", LoraModule.LowRank(a, b, 1.0) ])

            let tokenizer = LoraTokenizer(layout)
            let struct (grid, mask) = tokenizer.Tokenize set
            use grid = grid
            use mask = mask
            let g = rows grid
            // Tokens: A row i takes tokens 2i (31 values) and 2i + 1 (1 value); Bᵀ rows take tokens 12 … 23.
            for (i, c) in List.indexed constants do
                for t in [ 2 * i; 2 * i + 1 ] do
                    let token = g[t]
                    Expect.equal token[31] (float c) $"token {t}: the mean is the value {c} itself"
                    Expect.equal token[32] 0.0 $"token {t}: std 0"
                    Expect.isTrue (token[0..30] |> Array.forall ((=) 0.0)) $"token {t}: z-scores 0"

            let single = g[11]
            Expect.equal single[31] (last[0, 31].ToDouble()) "a single value is its own mean"
            Expect.equal single[32] 0.0 "…with std 0"
            let random = g[10]
            Expect.isGreaterThan random[32] 0.0 "a random chunk has a positive std"

            for t in 12..23 do
                Expect.isTrue (g[t] |> Array.forall ((=) 0.0)) $"token {t}: B = 0 gives zeros"

            use back = tokenizer.Detokenize grid
            let m = back.Modules["model.layers.0.self_attn.q_proj"]

            for i in 0L .. 4L do
                Expect.isTrue (same m.A[i] a[i]) $"constant row {i} comes back bit for bit"

            Expect.equal (m.A[5, 31].ToDouble()) (last[0, 31].ToDouble()) "the single value too"
            Expect.isTrue (same m.B b) "B = 0 comes back as 0"
            Expect.equal m.Scale 1.0 "the layout's scale"
        }

        test "tokenising is differentiable: gradients match finite differences, and are finite at B = 0" {
            let layout =
                LoraTokenLayout(3, [ LoraTokenModule("model.layers.0.self_attn.q_proj", 2, 4L, 5L, 1.5) ])

            let tokenizer = LoraTokenizer(layout)
            let g = new torch.Generator(5UL)
            use a0 = torch.randn ([| 2L; 5L |], generator = g, dtype = torch.float64)
            use b0 = torch.randn ([| 4L; 2L |], generator = g, dtype = torch.float64)
            use weights = torch.randn (layout.GridShape(), generator = g, dtype = torch.float64)

            let loss (a: torch.Tensor) (b: torch.Tensor) =
                use set =
                    new LoraSet(readOnlyDict [ "model.layers.0.self_attn.q_proj", LoraModule.LowRank(a, b, 1.5) ])

                let struct (grid, mask) = tokenizer.Tokenize set
                use grid = grid
                mask.Dispose()
                (grid * weights).sum()

            for index in [ 0L; 4L; 7L ] do
                let (analytic, numeric) = gradientCheck (fun x -> loss x b0) a0 index 1e-6
                Expect.floatClose { absolute = 1e-6; relative = 1e-5 } analytic numeric $"d/dA[{index}]"

            for index in [ 1L; 6L ] do
                let (analytic, numeric) = gradientCheck (fun x -> loss a0 x) b0 index 1e-6
                Expect.floatClose { absolute = 1e-6; relative = 1e-5 } analytic numeric $"d/dB[{index}]"

            use zero = torch.zeros ([| 4L; 2L |], dtype = torch.float64, requires_grad = true)
            use l = loss a0 zero
            l.backward ()
            Expect.isTrue (zero.grad.isfinite().all().item<bool>()) "finite gradient at constant chunks"
        }

        test "detokenising is differentiable: gradients match finite differences, padding gets none" {
            // q_proj [out 3, in 5], r 2, chunks of 2: A rows take 3 tokens (2, 2, 1 values), Bᵀ rows 2 (2, 1).
            let path = "model.layers.0.self_attn.q_proj"
            let layout = LoraTokenLayout(2, [ LoraTokenModule(path, 2, 3L, 5L, 1.5) ])
            let tokenizer = LoraTokenizer(layout)
            Expect.sequenceEqual (layout.GridShape()) [ 10L; 4L ] "grid [10, 4]"
            let g = new torch.Generator(9UL)
            use grid = torch.randn ([| 10L; 4L |], generator = g, dtype = torch.float64)
            use r = torch.randn ([| 3L; 5L |], generator = g, dtype = torch.float64)

            let loss (x: torch.Tensor) =
                use set = tokenizer.Detokenize x
                use dw = set.Modules[path].DeltaWeight()
                (dw * r).sum()

            // Value, mean and std channels of A's first token; a Bᵀ token's value and std; a padding entry.
            for index in [ 0L; 2L; 3L; 28L; 31L; 9L ] do
                let (analytic, numeric) = gradientCheck loss grid index 1e-6
                Expect.floatClose { absolute = 1e-7; relative = 1e-6 } analytic numeric $"d/dgrid[{index}]"

            let (analytic, _) = gradientCheck loss grid 9L 1e-6
            Expect.equal analytic 0.0 "token 2 channel 1 is padding: no gradient"
        }

        test "NaN padding marks the grid as the mask does, and detokenising ignores it (values and gradients)" {
            let layout =
                LoraTokenLayout.For(Qwen2Presets.Micro, LoraConfig(Rank = 3, Alpha = 6.0), 10)

            let tokenizer = LoraTokenizer(layout)
            use set = setOf layout (randomFactors layout 17L false torch.float32)
            let struct (grid, mask) = tokenizer.Tokenize(set, nan)
            use grid = grid
            use mask = mask
            use isNaN = grid.isnan ()
            Expect.isTrue (same isNaN (mask.logical_not ())) "NaN exactly where the mask is false"
            use leaf = grid.detach().requires_grad_(true)
            use back = tokenizer.Detokenize leaf
            Expect.isLessThanOrEqual (relativeError set back) 1e-6 "round trip"

            use total =
                torch.stack([ for m in back.Modules.Values -> (m.A.sum () + m.B.sum ()) ]).sum()

            total.backward ()
            Expect.isTrue (leaf.grad.isfinite().all().item<bool>()) "finite gradient"
            use atPadding = leaf.grad.masked_select (mask.logical_not ())
            Expect.isTrue (atPadding.eq((0.0).ToScalar()).all().item<bool>()) "zero gradient on padding"
        }

        test "a generated grid drives the forward pass: the loss's gradient reaches the grid" {
            use model = micro 21L

            let layout =
                LoraTokenLayout.For(Qwen2Presets.Micro, LoraConfig(Rank = 2, Alpha = 4.0), 8)

            let g = new torch.Generator(4UL)

            use grid =
                (torch.randn (layout.GridShape 2L, generator = g) * 0.1).requires_grad_(true)

            use set = LoraTokenizer(layout).Detokenize grid
            use ids = randomIds 5L Qwen2Presets.Micro.VocabSize 2 6
            use out = model.Forward(ids, ForwardOptions(Lora = set))
            use loss = out.Logits.square().mean()
            loss.backward ()
            use norms = grid.grad.abs().sum([| 1L; 2L |])
            Expect.isTrue (norms.gt((0.0).ToScalar()).all().item<bool>()) "each adapter's tokens get a gradient"
        }

        test "a grid of the wrong shape is an error naming the expected [T, C]" {
            let layout =
                LoraTokenLayout.For(Qwen2Presets.Micro, LoraConfig(Rank = 2, TargetModules = [| "q_proj" |]), 16)

            let tokenizer = LoraTokenizer(layout)
            let t, c = layout.Tokens, int64 layout.Channels

            for shape in [ [| t + 1L; c |]; [| t; c - 1L |]; [| 2L; t; c + 1L |]; [| t * c |] ] do
                use grid = torch.zeros shape

                let message =
                    errorMessage<LlgbmException>(fun () -> tokenizer.Detokenize grid |> ignore)

                Expect.stringContains message $"expected a grid of shape [{t}, {c}] or [N, {t}, {c}]" "expected shape"
                Expect.stringContains message (sprintf "found [%s]" (System.String.Join(", ", shape))) "found shape"

            use ints = torch.zeros ([| t; c |], dtype = torch.int64)

            let message =
                errorMessage<LlgbmException>(fun () -> tokenizer.Detokenize ints |> ignore)

            Expect.stringContains message "floating-point" "dtype"
        }

        test "a set that does not fit the layout is an error naming every offending module" {
            let layout =
                LoraTokenLayout.For(
                    Qwen2Presets.Micro,
                    LoraConfig(Rank = 2, TargetModules = [| "q_proj"; "v_proj" |]),
                    16
                )

            let tokenizer = LoraTokenizer(layout)

            use other =
                randomLora Qwen2Presets.Micro 1L 3L 0.1 (layout.Modules[0].Scale) [
                    0, "q_proj"
                    1, "q_proj"
                    1, "v_proj"
                    0, "up_proj"
                ]

            let message =
                errorMessage<LlgbmException>(fun () -> tokenizer.Tokenize other |> ignore)

            Expect.stringContains message "model.layers.0.mlp.up_proj is not in the layout" "extra module"
            Expect.stringContains message "model.layers.0.self_attn.v_proj is missing" "missing module"

            Expect.stringContains
                message
                "model.layers.0.self_attn.q_proj has rank 3 on [32, 32] but the layout expects rank 2 on [32, 32]"
                "rank"

            use dense =
                new LoraSet(
                    readOnlyDict [
                        for m in layout.Modules ->
                            m.Path, LoraModule.Dense(torch.zeros [| m.OutFeatures; m.InFeatures |])
                    ],
                    true
                )

            let message =
                errorMessage<LlgbmException>(fun () -> tokenizer.Tokenize dense |> ignore)

            Expect.stringContains message "is a dense ΔW" "dense"

            use rescaled = setOf layout (randomFactors layout 2L false torch.float32)

            use wrongScale =
                new LoraSet(
                    readOnlyDict [
                        for KeyValue(p, m) in rescaled.Modules -> p, LoraModule.LowRank(m.A, m.B, 3.0)
                    ]
                )

            let message =
                errorMessage<LlgbmException>(fun () -> tokenizer.Tokenize wrongScale |> ignore)

            Expect.stringContains message "has scale 3 but the layout expects 8" "scale"
        }
    ]
