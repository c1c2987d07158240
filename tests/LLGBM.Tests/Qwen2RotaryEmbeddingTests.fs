module LLGBM.Tests.Qwen2RotaryEmbeddingTests

open System
open Expecto
open FsCheck.FSharp
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Model
open LLGBM.Model.Modules
open LLGBM.Tests.TestModels

/// inv_freq[j] = 1 / θ^(2j/hd), j < hd/2, computed here in float64 (modeling_qwen2.py's rotary embedding).
let private invFreq (headDim: int) (theta: float) =
    Array.init (headDim / 2) (fun j -> 1.0 / Math.Pow(theta, float (2 * j) / float headDim))

/// cos and sin [1, T, hd] at the given positions, in float64.
let private cosSin (rope: Qwen2RotaryEmbedding) (positions: int list) =
    use ids = longs [ 1L; int64 positions.Length ] (positions |> List.map int64)
    rope.CosSin(ids, torch.float64)

/// A head vector rotated to `position`, as a flat float64 tensor [hd].
let private rotate (rope: Qwen2RotaryEmbedding) (x: float[]) (position: int) =
    let struct (cos, sin) = cosSin rope [ position ]
    use cos = cos
    use sin = sin
    use x = torch.tensor(x).view(1L, 1L, 1L, -1L)
    Qwen2RotaryEmbedding.Apply(x, cos, sin).flatten()

let private dot (a: torch.Tensor) (b: torch.Tensor) = (a * b).sum().item<float>()

let private norm (x: float[]) =
    x |> Array.sumBy (fun v -> v * v) |> sqrt

/// One case of the relative-position property: head width, θ, two head vectors and positions (p, s, d).
type RotaryCase = {
    HeadDim: int
    Theta: float
    Q: float[]
    K: float[]
    Positions: int * int * int
}

let private rotaryCase =
    gen {
        let! headDim = Generators.evenHeadDim
        let! theta = Gen.elements [ 10000.0; 1e6 ]
        let! q = Generators.vector headDim
        let! k = Generators.vector headDim
        let! positions = Generators.positionTriple

        return {
            HeadDim = headDim
            Theta = theta
            Q = q
            K = k
            Positions = positions
        }
    }
    |> Arb.fromGen

[<Tests>]
let tests =
    testList "Qwen2RotaryEmbedding" [
        testPropertyWithConfig
            (Generators.config 50)
            "Apply: the score of rotated q and k depends only on the position difference"
        <| Prop.forAll rotaryCase (fun case ->
            use rope = new Qwen2RotaryEmbedding(case.HeadDim, case.Theta)
            let (p, s, d) = case.Positions
            use qp = rotate rope case.Q p
            use kp = rotate rope case.K (p + d)
            use qs = rotate rope case.Q s
            use ks = rotate rope case.K (s + d)
            // angles are built in float32: allow ~1e-4 rad of error per angle at positions up to 1500
            let tolerance = 1e-3 * norm case.Q * norm case.K + 1e-9
            let difference = abs (dot qp kp - dot qs ks)
            Expect.isLessThanOrEqual difference tolerance $"|<R(p)q, R(p+d)k> - <R(s)q, R(s+d)k>| for {case}")

        test "Apply: position 0 is the identity" {
            use rope = new Qwen2RotaryEmbedding(8, 10000.0)
            let struct (cos, sin) = cosSin rope [ 0; 0; 0 ]
            use cos = cos
            use sin = sin
            Expect.equal (maxAbsDiff cos (torch.ones_like cos)) 0.0 "cos 0 = 1"
            Expect.equal (maxAbsDiff sin (torch.zeros_like sin)) 0.0 "sin 0 = 0"

            use x =
                torch.randn ([| 2L; 4L; 3L; 8L |], dtype = torch.float64, generator = new torch.Generator(3UL))

            use rotated = Qwen2RotaryEmbedding.Apply(x, cos, sin)
            Expect.equal (maxAbsDiff rotated x) 0.0 "rotated = x"
        }

        test "RotateHalf: [1, 2, 3, 4] becomes [-3, -4, 1, 2]" {
            use x = torch.tensor [| 1.0f; 2.0f; 3.0f; 4.0f |]
            use rotated = Qwen2RotaryEmbedding.RotateHalf x
            Expect.sequenceEqual (rotated.data<float32>().ToArray()) [| -3.0f; -4.0f; 1.0f; 2.0f |] "rotate_half"
            use batched = torch.tensor([| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]).view(3L, 2L)
            use rotatedRows = Qwen2RotaryEmbedding.RotateHalf batched

            Expect.sequenceEqual
                (rotatedRows.data<float32>().ToArray())
                [| -2.0f; 1.0f; -4.0f; 3.0f; -6.0f; 5.0f |]
                "per row of the last axis"
        }

        testPropertyWithConfig (Generators.config 30) "RotateHalf: applied twice it negates, on any leading shape"
        <| Prop.forAll
            (Gen.zip (Gen.zip Generators.smallDim Generators.smallDim) Generators.evenHeadDim
             |> Arb.fromGen)
            (fun ((rows, heads), headDim) ->
                let values = Array.init (rows * heads * headDim) (fun i -> float (i % 7) - 3.0)
                use x = torch.tensor(values).view(int64 rows, int64 heads, int64 headDim)
                use twice = Qwen2RotaryEmbedding.RotateHalf(Qwen2RotaryEmbedding.RotateHalf x)
                Expect.equal (maxAbsDiff twice (-x)) 0.0 "rotate_half(rotate_half(x)) = -x")

        test "CosSin: cos and sin of position × 1/θ^(2j/hd), both halves duplicated" {
            let headDim, theta = 8, 10000.0
            use rope = new Qwen2RotaryEmbedding(headDim, theta)
            let positions = [ 0; 1; 7; 100; 250 ]
            let struct (cos, sin) = cosSin rope positions
            use cos = cos
            use sin = sin
            Expect.sequenceEqual cos.shape [| 1L; int64 positions.Length; int64 headDim |] "shape [B, T, hd]"
            let frequencies = invFreq headDim theta

            let expected f = [|
                for p in positions do
                    let half = frequencies |> Array.map (fun w -> f (float p * w))
                    yield! Array.append half half
            |]

            let close (actual: torch.Tensor) (wanted: float[]) what =
                let values = actual.data<float>().ToArray()
                let worst = Array.map2 (fun a b -> abs (a - b)) values wanted |> Array.max
                // the angles are built in float32 (as modeling_qwen2.py builds them): about 1.5e-5 rad at position 250
                Expect.isLessThan worst 1e-4 what

            close cos (expected Math.Cos) "cos"
            close sin (expected Math.Sin) "sin"
            let half = int64 (headDim / 2)

            for t in [ cos; sin ] do
                let first =
                    t.index ([| torch.TensorIndex.Ellipsis; torch.TensorIndex.Slice(0L, half) |])

                let second =
                    t.index ([| torch.TensorIndex.Ellipsis; torch.TensorIndex.Slice(half) |])

                Expect.equal (maxAbsDiff first second) 0.0 "the second half repeats the first"
        }

        test "Apply: each pair (x[j], x[j + hd/2]) turns by the angle position × inv_freq[j]" {
            let headDim, theta, position = 6, 1e6, 37
            use rope = new Qwen2RotaryEmbedding(headDim, theta)
            let x = [| 0.5; -1.0; 2.0; 1.5; 0.25; -0.75 |]
            use rotated = rotate rope x position
            let h = headDim / 2
            let angles = invFreq headDim theta |> Array.map (fun w -> float position * w)

            let expected =
                Array.init headDim (fun i ->
                    if i < h then
                        x[i] * cos angles[i] - x[i + h] * sin angles[i]
                    else
                        x[i] * cos angles[i - h] + x[i - h] * sin angles[i - h])

            let actual = rotated.data<float>().ToArray()
            let worst = Array.map2 (fun a b -> abs (a - b)) actual expected |> Array.max
            Expect.isLessThan worst 1e-5 "2-D rotation of each pair"
        }

        test "inv_freq: a float32 buffer holding 1/θ^(2j/hd), outside the state dict" {
            use rope = new Qwen2RotaryEmbedding(8, 10000.0)
            let buffer = rope.get_buffer "inv_freq"
            Expect.isNotNull buffer "registered as a buffer"
            Expect.equal buffer.dtype torch.float32 "built in float32"
            use expected = torch.tensor (invFreq 8 10000.0)
            Expect.isLessThan (maxAbsDiff buffer expected) 1e-7 "1/θ^(2j/hd)"
            Expect.isFalse (rope.state_dict().ContainsKey "inv_freq") "not in the module's state dict"

            use model = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            let keys = model.state_dict().Keys |> List.ofSeq

            Expect.isEmpty
                (keys |> List.filter (fun k -> k.Contains "inv_freq" || k.Contains "rotary"))
                "not in the model's state dict"

            Expect.isNotNull (model.model.rotary_emb.get_buffer "inv_freq") "the model's rotary embedding holds it"
        }

        test "inv_freq: moves with the model, stays float32 through dtype changes and is disposed with it" {
            // the meta device stands in for a GPU: moving there is observable without one
            use moved = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            moved.``to`` torch.META |> ignore
            Expect.equal moved.model.embed_tokens.weight.device_type DeviceType.META "parameters moved"
            let buffer = moved.model.rotary_emb.get_buffer "inv_freq"
            Expect.equal buffer.device_type DeviceType.META "inv_freq moved too"

            Expect.isFalse
                (moved.state_dict().Keys |> Seq.exists (fun k -> k.Contains "inv_freq"))
                "still outside the state dict"

            use converted = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            converted.``to`` torch.float64 |> ignore
            Expect.equal converted.model.embed_tokens.weight.dtype torch.float64 "parameters converted"

            Expect.equal
                (converted.model.rotary_emb.get_buffer("inv_freq").dtype)
                torch.float32
                "inv_freq stays float32"

            let disposed = new Qwen2ForCausalLM(Qwen2Presets.Micro)
            let held = disposed.model.rotary_emb.get_buffer "inv_freq"
            disposed.Dispose()
            Expect.isTrue held.IsInvalid "inv_freq is freed with the model"
        }
    ]
