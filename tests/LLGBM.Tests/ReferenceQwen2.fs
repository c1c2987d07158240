/// An independent, plain-array reference implementation of the Qwen2 forward pass
/// (transformers' models/qwen2/modeling_qwen2.py; docs/reference.md §1), used as a test oracle
/// for the TorchSharp model.
///
/// Deliberately uses no TorchSharp and no LLGBM library code: only F# arrays, loops and
/// double-precision arithmetic, written for clarity rather than speed. (Hugging Face computes
/// RMSNorm, RoPE and softmax in float32; this oracle computes everything in float64, so
/// comparisons against a float32 model need a tolerance.)
module LLGBM.Tests.ReferenceQwen2

open System

type RefConfig = {
    Hidden: int
    Intermediate: int
    Layers: int
    Heads: int
    KvHeads: int
    HeadDim: int
    Vocab: int
    RmsEps: float
    RopeTheta: float
    TiedEmbeddings: bool
}

/// Hugging Face tensor name -> (shape, row-major data).
type Weights = Map<string, int[] * float32[]>

type RefOutput = {
    /// Layers+1 entries: [0] the embeddings, [i] the output of layer i-1, and the last one
    /// is the output of the last layer AFTER the final norm. Each is [T][H].
    HiddenStates: float[][][]
    /// [T][V]
    Logits: float[][]
}

// ---------------------------------------------------------------------------------------------
// Tensor names and shapes

let layerPrefix (layer: int) = sprintf "model.layers.%d" layer

/// Every tensor of a Qwen2ForCausalLM checkpoint with its shape, in a fixed order.
/// `lm_head.weight` is listed only when the embeddings are not tied.
let tensorShapes (cfg: RefConfig) : (string * int[]) list =
    let h, i = cfg.Hidden, cfg.Intermediate
    let qDim = cfg.Heads * cfg.HeadDim
    let kvDim = cfg.KvHeads * cfg.HeadDim

    [
        yield "model.embed_tokens.weight", [| cfg.Vocab; h |]
        for layer in 0 .. cfg.Layers - 1 do
            let p = layerPrefix layer
            yield p + ".input_layernorm.weight", [| h |]
            yield p + ".self_attn.q_proj.weight", [| qDim; h |]
            yield p + ".self_attn.q_proj.bias", [| qDim |]
            yield p + ".self_attn.k_proj.weight", [| kvDim; h |]
            yield p + ".self_attn.k_proj.bias", [| kvDim |]
            yield p + ".self_attn.v_proj.weight", [| kvDim; h |]
            yield p + ".self_attn.v_proj.bias", [| kvDim |]
            yield p + ".self_attn.o_proj.weight", [| h; qDim |]
            yield p + ".post_attention_layernorm.weight", [| h |]
            yield p + ".mlp.gate_proj.weight", [| i; h |]
            yield p + ".mlp.up_proj.weight", [| i; h |]
            yield p + ".mlp.down_proj.weight", [| h; i |]
        yield "model.norm.weight", [| h |]
        if not cfg.TiedEmbeddings then
            yield "lm_head.weight", [| cfg.Vocab; h |]
    ]

/// Looks a tensor up and checks that its shape is the expected one.
let private tensor (weights: Weights) (name: string) (shape: int[]) : float32[] =
    match Map.tryFind name weights with
    | None -> failwithf "ReferenceQwen2: missing tensor %s" name
    | Some(actual, data) ->
        if actual <> shape then
            failwithf "ReferenceQwen2: tensor %s has shape %A, expected %A" name actual shape

        if data.Length <> Array.fold (*) 1 shape then
            failwithf "ReferenceQwen2: tensor %s has %d values for shape %A" name data.Length shape

        data

/// A 1-D tensor as a float vector.
let vector (weights: Weights) (name: string) (length: int) : float[] =
    tensor weights name [| length |] |> Array.map float

/// A 2-D row-major tensor [rows, cols] as an array of rows.
let matrix (weights: Weights) (name: string) (rows: int) (cols: int) : float[][] =
    let data = tensor weights name [| rows; cols |]
    Array.init rows (fun r -> Array.init cols (fun c -> float data[r * cols + c]))

// ---------------------------------------------------------------------------------------------
// Building blocks

/// y = W x (+ b), with W given as [out][in].
let linear (w: float[][]) (bias: float[] option) (x: float[]) : float[] =
    let y =
        w
        |> Array.map (fun row ->
            let mutable s = 0.0

            for k in 0 .. x.Length - 1 do
                s <- s + row[k] * x[k]

            s)

    match bias with
    | Some b -> Array.map2 (+) y b
    | None -> y

/// RMSNorm: x * 1/sqrt(mean(x^2) + eps) * weight.
let rmsNorm (eps: float) (weight: float[]) (x: float[]) : float[] =
    let meanSquare = (x |> Array.sumBy (fun v -> v * v)) / float x.Length
    let scale = 1.0 / sqrt (meanSquare + eps)
    Array.map2 (fun v w -> v * scale * w) x weight

/// silu(x) = x * sigmoid(x) = x / (1 + e^-x).
let silu (x: float) : float = x / (1.0 + exp (-x))

/// Numerically stable softmax.
let softmax (xs: float[]) : float[] =
    let m = Array.max xs
    let e = xs |> Array.map (fun v -> exp (v - m))
    let total = Array.sum e
    e |> Array.map (fun v -> v / total)

/// inv_freq[j] = 1 / theta^(2j/hd), for j < hd/2.
let invFreq (theta: float) (headDim: int) : float[] =
    Array.init (headDim / 2) (fun j -> 1.0 / Math.Pow(theta, float (2 * j) / float headDim))

/// rotate_half([x1, x2]) = cat(-x2, x1), halves of length hd/2.
let rotateHalf (x: float[]) : float[] =
    let half = x.Length / 2
    Array.append (x[half..] |> Array.map (fun v -> -v)) x[.. half - 1]

/// NeoX-style rotary embedding of one head vector (length hd) at a position:
/// freqs = pos * inv_freq; emb = cat(freqs, freqs); x' = x*cos(emb) + rotate_half(x)*sin(emb).
let rotate (theta: float) (position: int) (x: float[]) : float[] =
    let freqs = invFreq theta x.Length |> Array.map (fun f -> float position * f)
    let emb = Array.append freqs freqs
    let rotated = rotateHalf x
    Array.init x.Length (fun d -> x[d] * cos emb[d] + rotated[d] * sin emb[d])

/// Splits a projection output of length nHeads*hd into nHeads head vectors of length hd.
let splitHeads (headDim: int) (x: float[]) : float[][] = Array.chunkBySize headDim x

/// The KV head that serves query head h: h / (nH/nKV) (integer division, i.e. repeat_interleave).
let kvHeadFor (cfg: RefConfig) (h: int) : int = h / (cfg.Heads / cfg.KvHeads)

/// Self-attention of one layer over a whole sequence. `x` is the INPUT-NORMED hidden state, [T][H];
/// returns o_proj(attention), [T][H]. Causal: key j is visible to query i iff j <= i.
let selfAttention (cfg: RefConfig) (weights: Weights) (layer: int) (positions: int[]) (x: float[][]) : float[][] =
    let p = layerPrefix layer + ".self_attn"
    let h, hd = cfg.Hidden, cfg.HeadDim
    let qDim, kvDim = cfg.Heads * hd, cfg.KvHeads * hd

    let wq, bq =
        matrix weights (p + ".q_proj.weight") qDim h, vector weights (p + ".q_proj.bias") qDim

    let wk, bk =
        matrix weights (p + ".k_proj.weight") kvDim h, vector weights (p + ".k_proj.bias") kvDim

    let wv, bv =
        matrix weights (p + ".v_proj.weight") kvDim h, vector weights (p + ".v_proj.bias") kvDim

    let wo = matrix weights (p + ".o_proj.weight") h qDim

    let tokens = x.Length

    // Per token, per head: biased projection, then rotary (q and k only) at the token's position.
    let q =
        Array.init tokens (fun t ->
            linear wq (Some bq) x[t]
            |> splitHeads hd
            |> Array.map (rotate cfg.RopeTheta positions[t]))

    let k =
        Array.init tokens (fun t ->
            linear wk (Some bk) x[t]
            |> splitHeads hd
            |> Array.map (rotate cfg.RopeTheta positions[t]))

    let v = Array.init tokens (fun t -> linear wv (Some bv) x[t] |> splitHeads hd)

    let dot (a: float[]) (b: float[]) : float =
        Array.fold2 (fun s u w -> s + u * w) 0.0 a b

    Array.init tokens (fun i ->
        let heads =
            Array.init cfg.Heads (fun head ->
                let kv = kvHeadFor cfg head
                // Only keys 0..i are visible to query i.
                let query = q[i][head]

                let scores =
                    Array.init (i + 1) (fun j ->
                        let key = k[j][kv]
                        dot query key / sqrt (float hd))

                let probs = softmax scores
                Array.init hd (fun d -> Array.fold2 (fun s pj (vj: float[][]) -> s + pj * vj[kv][d]) 0.0 probs v[..i]))

        linear wo None (Array.concat heads))

/// The MLP of one layer on one token: down(silu(gate(x)) * up(x)), no biases.
let mlp (cfg: RefConfig) (weights: Weights) (layer: int) (x: float[]) : float[] =
    let p = layerPrefix layer + ".mlp"
    let h, i = cfg.Hidden, cfg.Intermediate
    let gate = linear (matrix weights (p + ".gate_proj.weight") i h) None x
    let up = linear (matrix weights (p + ".up_proj.weight") i h) None x
    let inner = Array.map2 (fun g u -> silu g * u) gate up
    linear (matrix weights (p + ".down_proj.weight") h i) None inner

/// One pre-norm decoder layer over a sequence [T][H]:
/// h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
let decoderLayer (cfg: RefConfig) (weights: Weights) (layer: int) (positions: int[]) (x: float[][]) : float[][] =
    let p = layerPrefix layer
    let inputNorm = vector weights (p + ".input_layernorm.weight") cfg.Hidden
    let postNorm = vector weights (p + ".post_attention_layernorm.weight") cfg.Hidden

    let attn =
        x
        |> Array.map (rmsNorm cfg.RmsEps inputNorm)
        |> selfAttention cfg weights layer positions

    let h = Array.map2 (Array.map2 (+)) x attn

    h
    |> Array.map (fun ht -> Array.map2 (+) ht (mlp cfg weights layer (rmsNorm cfg.RmsEps postNorm ht)))

let private validate (cfg: RefConfig) (positions: int[]) (ids: int[]) =
    if cfg.HeadDim % 2 <> 0 then
        failwithf "ReferenceQwen2: head dim %d must be even" cfg.HeadDim

    if cfg.KvHeads <= 0 || cfg.Heads % cfg.KvHeads <> 0 then
        failwithf "ReferenceQwen2: %d heads not divisible by %d KV heads" cfg.Heads cfg.KvHeads

    if positions.Length <> ids.Length then
        failwithf "ReferenceQwen2: %d positions for %d ids" positions.Length ids.Length

    if ids.Length = 0 then
        failwith "ReferenceQwen2: empty input"

    for id in ids do
        if id < 0 || id >= cfg.Vocab then
            failwithf "ReferenceQwen2: token id %d outside vocab %d" id cfg.Vocab

/// The full Qwen2ForCausalLM forward pass on a single unpadded sequence.
let forward (cfg: RefConfig) (weights: Weights) (positions: int[]) (ids: int[]) : RefOutput =
    validate cfg positions ids
    let embed = matrix weights "model.embed_tokens.weight" cfg.Vocab cfg.Hidden
    let embeddings = ids |> Array.map (fun id -> Array.copy embed[id])

    // layerOutputs[i] = output of layer i-1 ([0] = embeddings), Layers+1 entries.
    let layerOutputs =
        (embeddings, [ 0 .. cfg.Layers - 1 ])
        ||> List.scan (fun x layer -> decoderLayer cfg weights layer positions x)
        |> Array.ofList

    let finalNorm = vector weights "model.norm.weight" cfg.Hidden
    let normed = layerOutputs[cfg.Layers] |> Array.map (rmsNorm cfg.RmsEps finalNorm)

    let lmHead =
        if cfg.TiedEmbeddings then
            embed
        else
            matrix weights "lm_head.weight" cfg.Vocab cfg.Hidden

    // Hugging Face's hidden_states: the last entry is replaced by the final-norm output.
    let hiddenStates = Array.append layerOutputs[.. cfg.Layers - 1] [| normed |]

    {
        HiddenStates = hiddenStates
        Logits = normed |> Array.map (linear lmHead None)
    }

// ---------------------------------------------------------------------------------------------
// Random weights for tests

/// Every tensor of `tensorShapes cfg` filled from System.Random(seed) (Box-Muller normals):
/// linear and embedding weights N(0, 0.2^2), norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2).
let randomWeights (cfg: RefConfig) (seed: int) : Weights =
    let rng = Random(seed)

    let normal () =
        let u1 = 1.0 - rng.NextDouble() // in (0, 1], safe for log
        let u2 = rng.NextDouble()
        sqrt (-2.0 * log u1) * cos (2.0 * Math.PI * u2)

    tensorShapes cfg
    |> List.map (fun (name, shape) ->
        let n = Array.fold (*) 1 shape

        let value () =
            if name.EndsWith "layernorm.weight" || name = "model.norm.weight" then
                1.0 + 0.1 * normal ()
            elif name.EndsWith ".bias" then
                0.1 * normal ()
            else
                0.2 * normal ()

        name, (shape, Array.init n (fun _ -> float32 (value ()))))
    |> Map.ofList
