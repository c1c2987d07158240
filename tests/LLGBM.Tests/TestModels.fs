/// Small seeded models and inputs shared by the model tests.
module LLGBM.Tests.TestModels

open TorchSharp
open LLGBM.Model

/// Gives every parameter a clearly non-trivial value (weights N(0, 0.3), biases N(0, 0.1), norm weights
/// 1 + N(0, 0.1)) so that every term of the forward pass matters.
let randomize (model: Qwen2ForCausalLM) (seed: int64) =
    use _ = torch.no_grad ()
    let g = new torch.Generator(uint64 seed)

    for struct (name: string, p: Modules.Parameter) in model.named_parameters () do
        let std = if name.EndsWith ".bias" then 0.1 else 0.3
        p.normal_ (0.0, std, g) |> ignore

        if name.EndsWith "norm.weight" then
            p.add_ ((1.0).ToScalar()) |> ignore

/// A micro model (H 32, 2 layers, 4 heads over 2 KV heads) with random weights.
let micro (seed: int64) =
    let model = new Qwen2ForCausalLM(LLGBM.Checkpoints.Qwen2Presets.Micro)
    randomize model seed
    model.eval ()
    model

/// Token ids [B, T] drawn uniformly from the vocabulary.
let randomIds (seed: int64) (vocab: int) (batch: int) (length: int) =
    let g = new torch.Generator(uint64 seed)
    torch.randint (int64 vocab, [| int64 batch; int64 length |], generator = g, dtype = torch.int64)

/// Largest absolute difference between two tensors, as a float.
let maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    (a.to_type (torch.float64) - b.to_type (torch.float64)).abs().max().item<float>()

/// An int64 tensor of the given shape from row-major values.
let longs (shape: int64 list) (values: int64 list) =
    torch.tensor(Array.ofList values).reshape(Array.ofList shape)

/// A copy of `config` with some config.json fields changed (F# cannot copy-and-update C# records).
let withFields (fields: (string * System.Text.Json.Nodes.JsonNode) list) (config: Qwen2Config) =
    let json = config.ToJson()

    for (name, value) in fields do
        json[name] <- value

    Qwen2Config.FromJson json

/// A JSON node from an F# value.
let jnode (value: 'T) : System.Text.Json.Nodes.JsonNode =
    System.Text.Json.Nodes.JsonValue.Create<'T> value

/// The oracle's view of an architecture.
let refConfig (config: Qwen2Config) : ReferenceQwen2.RefConfig = {
    Hidden = config.HiddenSize
    Intermediate = config.IntermediateSize
    Layers = config.NumHiddenLayers
    Heads = config.NumAttentionHeads
    KvHeads = config.NumKeyValueHeads
    HeadDim = config.HeadDim
    Vocab = config.VocabSize
    RmsEps = config.RmsNormEps
    RopeTheta = config.RopeTheta
    TiedEmbeddings = config.TieWordEmbeddings
}

/// Copies oracle weights (name -> shape, data) into a model's parameters of the same names; every parameter
/// must be covered.
let loadOracleWeights (model: Qwen2ForCausalLM) (weights: ReferenceQwen2.Weights) =
    use _ = torch.no_grad ()

    for KeyValue(name, t) in model.state_dict () do
        let (shape, data) = weights[name]
        use source = torch.tensor(data).reshape(shape |> Array.map int64)
        t.copy_ source |> ignore

/// The `'E` that `f` throws; fails the test when it throws nothing.
let thrown<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        Expecto.Tests.failtestf "expected %s, but nothing was thrown" typeof<'E>.Name
    with :? 'E as e ->
        e

/// The message of the `'E` that `f` throws; fails the test when it throws nothing.
let errorMessage<'E when 'E :> exn> (f: unit -> unit) : string = (thrown<'E> f).Message

/// A LoRA set over the given (layer, module name) pairs of `config` with factors A [rank, in] and B [out, rank]
/// drawn from N(0, std) and the given scale; the set owns its tensors.
let randomLora
    (config: Qwen2Config)
    (seed: int64)
    (rank: int64)
    (std: float)
    (scale: float)
    (targets: (int * string) list)
    =
    let g = new torch.Generator(uint64 seed)

    let modules =
        readOnlyDict [
            for (layer, name) in targets ->
                let path = LLGBM.Lora.LoraTarget.Path(layer, name)
                let struct (outFeatures, inFeatures) = LLGBM.Lora.LoraSet.ShapeOf(config, path)
                let a = torch.randn ([| rank; inFeatures |], generator = g) * std
                let b = torch.randn ([| outFeatures; rank |], generator = g) * std
                path, LLGBM.Lora.LoraModule.LowRank(a, b, scale)
        ]

    new LLGBM.Lora.LoraSet(modules, true)

/// The derivative of the scalar `f x` with respect to the flat entry `index` of `x` (float64), by central differences
/// with step `h`, next to the one autograd gives; `x` is left unchanged.
let gradientCheck (f: torch.Tensor -> torch.Tensor) (x: torch.Tensor) (index: int64) (h: float) =
    use leaf = x.detach().clone().requires_grad_(true)
    use loss = f leaf
    loss.backward ()
    let analytic = leaf.grad.view(-1).[index].item<float>()

    let at (shift: float) =
        use _ = torch.no_grad ()
        use moved = x.detach().clone()
        moved.view(-1).[index].add_(shift.ToScalar()) |> ignore
        use value = f moved
        value.item<float>()

    analytic, (at h - at -h) / (2.0 * h)
