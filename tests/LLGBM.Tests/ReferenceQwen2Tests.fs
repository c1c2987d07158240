/// Checks of the reference Qwen2 oracle itself against numbers derived by hand.
module LLGBM.Tests.ReferenceQwen2Tests

open System
open Expecto
open LLGBM.Tests.ReferenceQwen2

let private acc = Accuracy.veryHigh

let private expectVec (actual: float[]) (expected: float[]) (msg: string) =
    Expect.equal actual.Length expected.Length (msg + ": length")

    Array.iteri2 (fun i a e -> Expect.floatClose acc a e (sprintf "%s[%d]" msg i)) actual expected

let private expectMat (actual: float[][]) (expected: float[][]) (msg: string) =
    Expect.equal actual.Length expected.Length (msg + ": rows")
    Array.iteri2 (fun i a e -> expectVec a e (sprintf "%s[%d]" msg i)) actual expected

let private expectOutputs (actual: RefOutput) (expected: RefOutput) (msg: string) =
    Expect.equal actual.HiddenStates.Length expected.HiddenStates.Length (msg + ": hidden-state count")

    Array.iteri2 (fun i a e -> expectMat a e (sprintf "%s hidden[%d]" msg i)) actual.HiddenStates expected.HiddenStates

    expectMat actual.Logits expected.Logits (msg + " logits")

/// Builds a Weights map from row-major float values.
let private weightsOf (entries: (string * int[] * float list) list) : Weights =
    entries
    |> List.map (fun (name, shape, values) -> name, (shape, values |> List.map float32 |> Array.ofList))
    |> Map.ofList

// ---------------------------------------------------------------------------------------------
// The hand model: 1 layer, H=2, nH=nKV=1, hd=2, I=1, V=3, eps=0.
//
// Token id 2, embedding row [1, -1]:
//   input_layernorm, weight [2, 1]: mean(x^2) = (1+1)/2 = 1, so xn = [1,-1] * [2,1] = [2, -1].
//   One token: the only visible key is itself, softmax of one score is 1, so the attention output
//   is o_proj(v) whatever q, k and the rotary position are.
//   v = [[1,0],[0,1]] xn + [0.5, 0.5] = [2.5, -0.5].
//   o_proj [[0,-2],[1,-1]]: [0*2.5 + (-2)(-0.5), 1*2.5 + (-1)(-0.5)] = [1, 3].
//   h = x + attn = [1,-1] + [1,3] = [2, 2].
//   post_attention_layernorm, weight [1, 0.5]: mean(h^2) = 4, rms = 2, so hn = [1,1] * [1,0.5] = [1, 0.5].
//   gate [[1,2]]: 1 + 2*0.5 = 2;  up [[2,-2]]: 2 - 2*0.5 = 1;  inner = silu(2) * 1 = s, s = 2/(1+e^-2).
//   down [[1],[-1]]: [s, -s];  layer output = h + mlp = [2+s, 2-s].
//   final norm, weight [1,1]: mean = ((2+s)^2 + (2-s)^2)/2 = 4 + s^2, r = sqrt(4+s^2);
//   final = [(2+s)/r, (2-s)/r].
//   lm_head [[1,0],[0,1],[1,1]]: logits = [(2+s)/r, (2-s)/r, 4/r].
//   Tied (lm_head = embed [[1,0],[0,1],[1,-1]]): logits = [(2+s)/r, (2-s)/r, 2s/r].

let private handConfig = {
    Hidden = 2
    Intermediate = 1
    Layers = 1
    Heads = 1
    KvHeads = 1
    HeadDim = 2
    Vocab = 3
    RmsEps = 0.0
    RopeTheta = 10000.0
    TiedEmbeddings = false
}

let private handWeights =
    weightsOf [
        "model.embed_tokens.weight", [| 3; 2 |], [ 1; 0; 0; 1; 1; -1 ]
        "model.layers.0.input_layernorm.weight", [| 2 |], [ 2; 1 ]
        // q and k are arbitrary: they cannot matter for a single token.
        "model.layers.0.self_attn.q_proj.weight", [| 2; 2 |], [ 1; 2; 3; 4 ]
        "model.layers.0.self_attn.q_proj.bias", [| 2 |], [ 0.5; -0.5 ]
        "model.layers.0.self_attn.k_proj.weight", [| 2; 2 |], [ -1; 0; 2; 1 ]
        "model.layers.0.self_attn.k_proj.bias", [| 2 |], [ 0.1; 0.2 ]
        "model.layers.0.self_attn.v_proj.weight", [| 2; 2 |], [ 1; 0; 0; 1 ]
        "model.layers.0.self_attn.v_proj.bias", [| 2 |], [ 0.5; 0.5 ]
        "model.layers.0.self_attn.o_proj.weight", [| 2; 2 |], [ 0; -2; 1; -1 ]
        "model.layers.0.post_attention_layernorm.weight", [| 2 |], [ 1; 0.5 ]
        "model.layers.0.mlp.gate_proj.weight", [| 1; 2 |], [ 1; 2 ]
        "model.layers.0.mlp.up_proj.weight", [| 1; 2 |], [ 2; -2 ]
        "model.layers.0.mlp.down_proj.weight", [| 2; 1 |], [ 1; -1 ]
        "model.norm.weight", [| 2 |], [ 1; 1 ]
        "lm_head.weight", [| 3; 2 |], [ 1; 0; 0; 1; 1; 1 ]
    ]

let private s = 2.0 / (1.0 + exp -2.0)
let private r = sqrt (4.0 + s * s)

// ---------------------------------------------------------------------------------------------
// A small random model for the structural checks.

let private randomConfig = {
    Hidden = 8
    Intermediate = 12
    Layers = 2
    Heads = 4
    KvHeads = 2
    HeadDim = 4
    Vocab = 11
    RmsEps = 1e-6
    RopeTheta = 10000.0
    TiedEmbeddings = false
}

/// Rebuilds every layer's k_proj/v_proj so that new KV head g is a copy of old KV head mapping[g].
let private expandKv (cfg: RefConfig) (weights: Weights) (mapping: int[]) : RefConfig * Weights =
    let hd = cfg.HeadDim

    let expand (name: string) (weights: Weights) =
        let shape, data = weights[name]
        let rowLen = if shape.Length = 2 then shape[1] else 1
        let headLen = hd * rowLen

        let data' =
            mapping |> Array.collect (fun old -> Array.sub data (old * headLen) headLen)

        let shape' = Array.append [| mapping.Length * hd |] shape[1..]
        Map.add name (shape', data') weights

    let weights' =
        [
            for layer in 0 .. cfg.Layers - 1 do
                for proj in [ "k_proj"; "v_proj" ] do
                    for kind in [ "weight"; "bias" ] do
                        sprintf "model.layers.%d.self_attn.%s.%s" layer proj kind
        ]
        |> List.fold (fun w name -> expand name w) weights

    { cfg with KvHeads = mapping.Length }, weights'

[<Tests>]
let tests =
    testList "ReferenceQwen2" [
        test "rmsNorm of [3;4] with unit weight and eps 0 is [3;4]/sqrt(12.5)" {
            // mean(x^2) = (9 + 16) / 2 = 12.5.
            expectVec (rmsNorm 0.0 [| 1.0; 1.0 |] [| 3.0; 4.0 |]) [| 3.0 / sqrt 12.5; 4.0 / sqrt 12.5 |] "rmsNorm"
        }

        test "rmsNorm applies eps inside the root and the weight after" {
            // x = [1; -1]: mean(x^2) = 1; with eps = 1 the scale is 1/sqrt 2; times weight [2; 0.5].
            expectVec (rmsNorm 1.0 [| 2.0; 0.5 |] [| 1.0; -1.0 |]) [| 2.0 / sqrt 2.0; -0.5 / sqrt 2.0 |] "rmsNorm"
        }

        test "silu and softmax at hand-computed points" {
            // silu(0) = 0; silu(ln 3) = ln 3 / (1 + 1/3) = 0.75 ln 3.
            Expect.floatClose acc (silu 0.0) 0.0 "silu 0"
            Expect.floatClose acc (silu (log 3.0)) (0.75 * log 3.0) "silu ln 3"
            // softmax [0; ln 3] = [1; 3] / 4.
            expectVec (softmax [| 0.0; log 3.0 |]) [| 0.25; 0.75 |] "softmax"
            // Shifting all scores does not change softmax (and large scores do not overflow).
            expectVec (softmax [| 1000.0; 1000.0 + log 3.0 |]) [| 0.25; 0.75 |] "softmax shifted"
        }

        test "invFreq is 1/theta^(2j/hd)" {
            // hd = 4: j = 0 -> theta^0 = 1; j = 1 -> theta^(-1/2) = 1/100 for theta = 10000.
            expectVec (invFreq 10000.0 4) [| 1.0; 0.01 |] "inv_freq"
        }

        test "rotateHalf of [x1; x2] is [-x2; x1]" {
            expectVec (rotateHalf [| 1.0; 2.0; 3.0; 4.0 |]) [| -3.0; -4.0; 1.0; 2.0 |] "rotate_half"
        }

        test "rotary at position 0 is the identity" {
            let x = [| 0.3; -1.2; 2.5; 0.7; -0.1; 4.0 |]
            expectVec (rotate 10000.0 0 x) x "position 0"
        }

        test "rotary with hd=2 turns [1;0] at position 1 into [cos 1; sin 1]" {
            // hd = 2: inv_freq = [1] whatever theta; emb = [1; 1];
            // x*cos + rotate_half(x)*sin = [1;0]*cos 1 + [0;1]*sin 1.
            expectVec (rotate 123.0 1 [| 1.0; 0.0 |]) [| cos 1.0; sin 1.0 |] "theta 123"
            expectVec (rotate 1e6 1 [| 1.0; 0.0 |]) [| cos 1.0; sin 1.0 |] "theta 1e6"
        }

        test "rotary with hd=4 rotates pairs (x_j, x_{j+2}) by p*inv_freq[j]" {
            // theta = 100: inv_freq = [1; 100^(-1/2)] = [1; 0.1]. At p = 2 the angles are 2 and 0.2:
            // (x0, x2) = (1, 3) rotated by 2; (x1, x3) = (2, 4) rotated by 0.2.
            let a, b = 2.0, 0.2

            expectVec
                (rotate 100.0 2 [| 1.0; 2.0; 3.0; 4.0 |])
                [|
                    1.0 * cos a - 3.0 * sin a
                    2.0 * cos b - 4.0 * sin b
                    3.0 * cos a + 1.0 * sin a
                    4.0 * cos b + 2.0 * sin b
                |]
                "hd 4"
        }

        test "rotary scores depend only on the relative position" {
            // A rotation by p then by p' leaves (R_p q) . (R_p' k) = q . R_(p'-p) k.
            let q = [| 0.3; -1.2; 2.5; 0.7 |]
            let k = [| 1.1; 0.4; -0.6; 2.0 |]

            let dot (a: float[]) b =
                Array.fold2 (fun acc u v -> acc + u * v) 0.0 a b

            Expect.floatClose
                acc
                (dot (rotate 50.0 7 q) (rotate 50.0 4 k))
                (dot (rotate 50.0 3 q) (rotate 50.0 0 k))
                "7,4 vs 3,0"
        }

        test "hand model, one token: hidden states and logits" {
            let out = forward handConfig handWeights [| 0 |] [| 2 |]
            Expect.equal out.HiddenStates.Length 2 "Layers + 1 hidden states"
            expectMat out.HiddenStates[0] [| [| 1.0; -1.0 |] |] "embeddings"
            expectMat out.HiddenStates[1] [| [| (2.0 + s) / r; (2.0 - s) / r |] |] "after final norm"
            expectMat out.Logits [| [| (2.0 + s) / r; (2.0 - s) / r; 4.0 / r |] |] "logits"
        }

        test "hand model, one token: the raw layer output is [2+s; 2-s]" {
            let x = [| [| 1.0; -1.0 |] |]
            expectMat (decoderLayer handConfig handWeights 0 [| 0 |] x) [| [| 2.0 + s; 2.0 - s |] |] "layer 0"
            // The attention part alone: o_proj(v) = [1; 3] for the normed input [2; -1].
            expectMat
                (selfAttention handConfig handWeights 0 [| 0 |] [| [| 2.0; -1.0 |] |])
                [| [| 1.0; 3.0 |] |]
                "attention"
        }

        test "hand model, one token: the rotary position does not matter" {
            // Softmax over a single score is 1 at any position, so the output is unchanged.
            expectOutputs
                (forward handConfig handWeights [| 7 |] [| 2 |])
                (forward handConfig handWeights [| 0 |] [| 2 |])
                "position 7 vs 0"
        }

        test "hand model, tied: logits use embed_tokens and ignore lm_head" {
            let tied = {
                handConfig with
                    TiedEmbeddings = true
            }

            let expected = [| [| (2.0 + s) / r; (2.0 - s) / r; 2.0 * s / r |] |]
            // lm_head.weight is still present in handWeights: it must be ignored.
            expectMat (forward tied handWeights [| 0 |] [| 2 |]).Logits expected "with lm_head present"

            expectMat
                (forward tied (Map.remove "lm_head.weight" handWeights) [| 0 |] [| 2 |]).Logits
                expected
                "without lm_head"
        }

        test "two tokens: attention weights from rotated constant q and k" {
            // q_proj and k_proj weights are zero, so q = bias = [1; 0] and k = bias = [2; 0] at every token.
            // hd = 2, inv_freq = [1]: rotated to position p they become [cos p; sin p] and 2[cos p; sin p].
            // Query 0 sees only key 0: weight 1, output = v_0.
            // Query 1 (q = [cos 1; sin 1]) sees k_0 = [2; 0] and k_1 = 2[cos 1; sin 1]:
            //   scores = [2 cos 1; 2] / sqrt 2 = [sqrt2 cos 1; sqrt2];  w = softmax(scores).
            // v_proj and o_proj are the identity (v bias 0), so output_1 = w0 x_0 + w1 x_1 = [w0; w1]
            // for x_0 = [1; 0], x_1 = [0; 1].
            let cfg = { handConfig with RopeTheta = 77.0 }

            let weights =
                handWeights
                |> Map.add "model.layers.0.self_attn.q_proj.weight" ([| 2; 2 |], Array.zeroCreate 4)
                |> Map.add "model.layers.0.self_attn.q_proj.bias" ([| 2 |], [| 1.0f; 0.0f |])
                |> Map.add "model.layers.0.self_attn.k_proj.weight" ([| 2; 2 |], Array.zeroCreate 4)
                |> Map.add "model.layers.0.self_attn.k_proj.bias" ([| 2 |], [| 2.0f; 0.0f |])
                |> Map.add "model.layers.0.self_attn.v_proj.bias" ([| 2 |], [| 0.0f; 0.0f |])
                |> Map.add "model.layers.0.self_attn.o_proj.weight" ([| 2; 2 |], [| 1.0f; 0.0f; 0.0f; 1.0f |])

            let e0, e1 = exp (sqrt 2.0 * cos 1.0), exp (sqrt 2.0)
            let w0, w1 = e0 / (e0 + e1), e1 / (e0 + e1)

            let out =
                selfAttention cfg weights 0 [| 0; 1 |] [| [| 1.0; 0.0 |]; [| 0.0; 1.0 |] |]

            expectMat out [| [| 1.0; 0.0 |]; [| w0; w1 |] |] "attention"
        }

        test "causal: token 0's outputs do not depend on token 1" {
            let weights = randomWeights randomConfig 1
            let one = forward randomConfig weights [| 0 |] [| 3 |]

            for next in [ 0; 5; 10 ] do
                let two = forward randomConfig weights [| 0; 1 |] [| 3; next |]

                for i in 0 .. one.HiddenStates.Length - 1 do
                    let actual, expected = two.HiddenStates[i][0], one.HiddenStates[i][0]
                    expectVec actual expected (sprintf "hidden[%d] token 0" i)

                expectVec two.Logits[0] one.Logits[0] "logits token 0"

            // The other way round, token 1 does see token 0.
            let a = forward randomConfig weights [| 0; 1 |] [| 3; 5 |]
            let b = forward randomConfig weights [| 0; 1 |] [| 4; 5 |]
            Expect.isGreaterThan (abs (a.Logits[1][0] - b.Logits[1][0])) 1e-6 "token 1 depends on token 0"
        }

        test "GQA: nH=2, nKV=1 equals nKV=2 with both KV heads copies of the single one" {
            let cfg = {
                randomConfig with
                    Heads = 2
                    KvHeads = 1
            }

            let weights = randomWeights cfg 2
            let cfg2, weights2 = expandKv cfg weights [| 0; 0 |]
            Expect.equal cfg2.KvHeads 2 "expanded"
            let ids = [| 1; 7; 2; 9 |]
            let positions = [| 0; 1; 2; 3 |]
            expectOutputs (forward cfg2 weights2 positions ids) (forward cfg weights positions ids) "nKV 2 copies vs 1"
        }

        test "GQA: with nH=4, nKV=2 query head h uses KV head h/2 (interleaved, not modulo)" {
            // Query heads 0,1 -> KV head 0; heads 2,3 -> KV head 1. So expanding the KV heads to
            // [0;0;1;1] must give the same model, and [0;1;0;1] (the modulo mapping) must not.
            let weights = randomWeights randomConfig 3
            let ids = [| 1; 7; 2; 9 |]
            let positions = [| 0; 1; 2; 3 |]
            let expected = forward randomConfig weights positions ids
            let cfgI, weightsI = expandKv randomConfig weights [| 0; 0; 1; 1 |]
            expectOutputs (forward cfgI weightsI positions ids) expected "interleaved copies"
            let cfgM, weightsM = expandKv randomConfig weights [| 0; 1; 0; 1 |]
            let modulo = forward cfgM weightsM positions ids

            Expect.isGreaterThan
                (Array.map2 (fun (a: float) b -> abs (a - b)) modulo.Logits[3] expected.Logits[3]
                 |> Array.max)
                1e-6
                "modulo mapping differs"
        }

        test "hidden states: embeddings, each layer's output, last one after the final norm" {
            let weights = randomWeights randomConfig 4
            let positions, ids = [| 0; 1; 2 |], [| 4; 0; 10 |]
            let out = forward randomConfig weights positions ids
            Expect.equal out.HiddenStates.Length (randomConfig.Layers + 1) "count"

            let embed =
                matrix weights "model.embed_tokens.weight" randomConfig.Vocab randomConfig.Hidden

            expectMat out.HiddenStates[0] (ids |> Array.map (fun id -> embed[id])) "embeddings"
            let layer0 = decoderLayer randomConfig weights 0 positions out.HiddenStates[0]
            expectMat out.HiddenStates[1] layer0 "layer 0 output"
            let layer1 = decoderLayer randomConfig weights 1 positions layer0
            let norm = vector weights "model.norm.weight" randomConfig.Hidden
            expectMat out.HiddenStates[2] (layer1 |> Array.map (rmsNorm randomConfig.RmsEps norm)) "final norm"
            let lmHead = matrix weights "lm_head.weight" randomConfig.Vocab randomConfig.Hidden
            expectMat out.Logits (out.HiddenStates[2] |> Array.map (linear lmHead None)) "logits"
        }

        test "randomWeights: every tensor with its shape, deterministic in the seed" {
            let weights = randomWeights randomConfig 5
            let shapes = tensorShapes randomConfig
            Expect.equal (weights.Count) (List.length shapes) "tensor count"
            // 1 embedding + 12 per layer + final norm + lm_head.
            Expect.equal weights.Count (1 + 12 * randomConfig.Layers + 2) "count by hand"
            Expect.equal (fst weights["model.layers.1.self_attn.k_proj.weight"]) [| 8; 8 |] "k_proj [nKV*hd, H]"
            Expect.equal (fst weights["model.layers.1.self_attn.o_proj.weight"]) [| 8; 16 |] "o_proj [H, nH*hd]"
            Expect.equal (fst weights["model.layers.0.mlp.down_proj.weight"]) [| 8; 12 |] "down_proj [H, I]"

            for name, shape in shapes do
                let actual, data = weights[name]
                Expect.equal actual shape name
                Expect.equal data.Length (Array.fold (*) 1 shape) (name + " size")

            let norm = snd weights["model.layers.0.input_layernorm.weight"]
            Expect.all norm (fun v -> abs (v - 1.0f) < 0.5f) "norm weights near 1"
            let again = randomWeights randomConfig 5

            for KeyValue(name, (_, data)) in weights do
                Expect.equal (snd again[name]) data (name + " deterministic")

            let other = randomWeights randomConfig 6

            Expect.notEqual
                (snd other["model.embed_tokens.weight"])
                (snd weights["model.embed_tokens.weight"])
                "seed matters"

            let tied =
                randomWeights
                    {
                        randomConfig with
                            TiedEmbeddings = true
                    }
                    5

            Expect.isFalse (tied.ContainsKey "lm_head.weight") "no lm_head when tied"
        }

        test "missing or misshapen tensors are rejected" {
            let weights = randomWeights randomConfig 7

            Expect.throws
                (fun () ->
                    forward randomConfig (Map.remove "model.norm.weight" weights) [| 0 |] [| 1 |]
                    |> ignore)
                "missing"

            Expect.throws
                (fun () ->
                    forward randomConfig (Map.add "model.norm.weight" ([| 7 |], Array.zeroCreate 7) weights) [| 0 |] [|
                        1
                    |]
                    |> ignore)
                "wrong shape"
        }
    ]
