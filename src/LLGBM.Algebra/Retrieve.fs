/// Retrieving stored adapters by behaviour: the top-k entries of a library of delta activations nearest to a query
/// delta, by cosine similarity or Euclidean distance, with their scores and mixing weights. This is the retrieval that
/// Delta Activations (arXiv 2509.04442) motivates: adapters with similar deltas do similar things. The
/// softmax weighting over similarities is that of LoraRetriever (Zhao et al., "LoraRetriever: Input-Aware LoRA
/// Retrieval and Composition for Mixed Tasks in the Wild", ACL Findings 2024) and of attention over retrieved items.
module LLGBM.Algebra.Retrieve

open System
open LLGBM

/// What "near" means.
type Similarity =
    /// Cosine similarity (higher is nearer).
    | Cosine
    /// Euclidean distance (lower is nearer).
    | L2

    /// The similarity's name: cosine or l2.
    member this.Name =
        match this with
        | Cosine -> "cosine"
        | L2 -> "l2"

    /// The similarity named `name` (cosine or l2).
    static member Parse(name: string) =
        match name with
        | "cosine" -> Cosine
        | "l2" -> L2
        | other -> raise (LlgbmException $"Similarity \"{other}\": expected cosine or l2.")

/// One retrieved entry.
type Hit<'T> = {
    /// The entry as stored in the library.
    Item: 'T
    /// Its position in the library.
    Index: int
    /// Its cosine similarity to the query (for `Cosine`) or its Euclidean distance (for `L2`).
    Score: float
}

/// The `k` library entries nearest to `query` (all of them when k exceeds the library), nearest first; equally near
/// entries keep library order. Every stored delta must have the query's length.
[<CompiledName("TopK")>]
let topK (similarity: Similarity) (k: int) (query: float32[]) (library: seq<'T * float32[]>) : Hit<'T> list =
    if k < 1 then
        raise (LlgbmException $"Retrieve: k must be at least 1, found {k}.")

    let scored =
        library
        |> Seq.mapi (fun i (item, delta: float32[]) ->
            if delta.Length <> query.Length then
                raise (
                    LlgbmException
                        $"Retrieve: library entry {i} ({item}) has a delta of length {delta.Length}, the query {query.Length}."
                )

            let score =
                match similarity with
                | Cosine -> Metrics.cosine query delta
                | L2 -> Metrics.l2 query delta

            {
                Item = item
                Index = i
                Score = score
            })
        |> Array.ofSeq

    let nearerFirst =
        match similarity with
        | Cosine -> Array.sortWith (fun a b -> compare (b.Score, a.Index) (a.Score, b.Index)) scored
        | L2 -> Array.sortWith (fun a b -> compare (a.Score, a.Index) (b.Score, b.Index)) scored

    nearerFirst |> Array.truncate k |> List.ofArray

/// `topK Cosine`.
[<CompiledName("ByCosine")>]
let byCosine (k: int) (query: float32[]) (library: seq<'T * float32[]>) : Hit<'T> list = topK Cosine k query library

/// `topK L2`.
[<CompiledName("ByL2")>]
let byL2 (k: int) (query: float32[]) (library: seq<'T * float32[]>) : Hit<'T> list = topK L2 k query library

/// How the retrieved entries are mixed.
type Weighting =
    /// Every hit weighs 1/k.
    | Uniform
    /// softmax(score / temperature) for cosine, softmax(−distance / temperature) for L2.
    | Softmax of temperature: float

    /// "uniform", or "softmax (temperature T)".
    member this.Describe() =
        match this with
        | Uniform -> "uniform"
        | Softmax t -> $"softmax (temperature {t})"

    /// "uniform", or "softmax" with the given temperature.
    static member Parse(name: string, temperature: float) =
        match name with
        | "uniform" -> Uniform
        | "softmax" -> Softmax temperature
        | other -> raise (LlgbmException $"Weighting \"{other}\": expected uniform or softmax.")

/// The mixing weights of the hits (they sum to 1): uniform, or a softmax of the similarities (negated distances for
/// L2) divided by the temperature, computed stably (the largest logit subtracted first).
[<CompiledName("Weights")>]
let weights (similarity: Similarity) (weighting: Weighting) (hits: Hit<'T> list) : float[] =
    let hits = Array.ofList hits

    if hits.Length = 0 then
        [||]
    else
        match weighting with
        | Uniform -> Array.create hits.Length (1.0 / float hits.Length)
        | Softmax temperature ->
            if not (temperature > 0.0) || Double.IsInfinity temperature then
                raise (LlgbmException $"Retrieve: the softmax temperature must be positive, found {temperature}.")

            let logits =
                hits
                |> Array.map (fun h ->
                    match similarity with
                    | Cosine -> h.Score / temperature
                    | L2 -> -h.Score / temperature)

            let top = Array.max logits
            let e = logits |> Array.map (fun l -> exp (l - top))
            let total = Array.sum e
            e |> Array.map (fun x -> x / total)
