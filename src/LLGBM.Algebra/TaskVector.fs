namespace LLGBM.Algebra

open System
open System.Collections.Generic
open TorchSharp
open LLGBM
open LLGBM.Lora

/// <summary>
/// A task vector in the sense of task arithmetic (Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023):
/// the weight change τ an adapter makes, here ΔW = scale · B · A per adapted linear module, keyed by the module's
/// state-dict path (<c>model.layers.3.self_attn.q_proj</c>). Each ΔW is a dense float32 tensor [out, in] without
/// gradients. As a vector, τ is the concatenation of its modules' entries in ordinal path order (<see cref="Paths"/>);
/// a module one vector lacks counts as ΔW = 0 there, so vectors over different module sets still add up.
/// </summary>
/// <remarks>
/// The operators read like the maths: <c>a + b</c>, <c>a - b</c>, <c>0.5 * a</c>, <c>-a</c>; each returns a fresh
/// vector. A task vector owns its tensors and disposes them (finalizers free them otherwise, as in F# interactive).
/// Delta activations, the behavioural embeddings, are plain <c>float32[]</c> (see <c>Compose</c>, <c>Metrics</c>).
/// </remarks>
[<Sealed>]
type TaskVector(modules: seq<string * torch.Tensor>) =
    let table =
        let d = Dictionary<string, torch.Tensor>(StringComparer.Ordinal)

        for (path, t) in modules do
            if d.ContainsKey path then
                raise (LlgbmException $"Task vector: module {path} is given twice.")

            d[path] <- t

        d

    let paths =
        table.Keys
        |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b))
        |> Array.ofSeq

    /// <summary>The module paths, in ordinal order (the order of the flattened vector).</summary>
    member _.Paths: string[] = paths

    /// <summary>ΔW of the module at <paramref name="path"/>.</summary>
    member _.Item
        with get (path: string) =
            match table.TryGetValue path with
            | true, t -> t
            | _ -> raise (LlgbmException $"Task vector: no module {path} (it has {Listing.joined (paths)}).")

    /// <summary>True when the vector holds a ΔW for <paramref name="path"/>.</summary>
    member _.Contains(path: string) = table.ContainsKey path

    /// <summary>The modules by path.</summary>
    member _.Modules: IReadOnlyDictionary<string, torch.Tensor> = table

    /// <summary>The number of entries (the vector's dimension).</summary>
    member _.Numel: int64 = table.Values |> Seq.sumBy (fun t -> t.numel ())

    /// <summary>The shape of the module at <paramref name="path"/>.</summary>
    member this.ShapeOf(path: string) : int64[] = this[path].shape

    /// <summary>A vector with <paramref name="f"/> applied to every module's ΔW (a fresh tensor per module).</summary>
    member _.Map(f: torch.Tensor -> torch.Tensor) =
        new TaskVector(
            [
                for p in paths ->
                    use _ = torch.no_grad ()
                    p, f table[p]
            ]
        )

    /// <summary>The entry-wise combination of two vectors over the union of their modules (a missing module is 0).</summary>
    static member Zip (name: string) (f: torch.Tensor -> torch.Tensor -> torch.Tensor) (a: TaskVector) (b: TaskVector) =
        let union =
            Seq.append a.Paths b.Paths
            |> Seq.distinct
            |> Seq.sortWith (fun x y -> String.CompareOrdinal(x, y))

        new TaskVector(
            [
                for p in union ->
                    use _ = torch.no_grad ()

                    match a.Contains p, b.Contains p with
                    | true, true ->
                        if a[p].shape <> b[p].shape then
                            raise (
                                LlgbmException(
                                    $"Task vectors {name}: module {p} is [{Listing.joined (a[p].shape)}] in one "
                                    + $"and [{Listing.joined (b[p].shape)}] in the other."
                                )
                            )

                        p, f a[p] b[p]
                    | true, false ->
                        use zero = torch.zeros_like a[p]
                        p, f a[p] zero
                    | _ ->
                        use zero = torch.zeros_like b[p]
                        p, f zero b[p]
            ]
        )

    /// <summary>τ_a + τ_b.</summary>
    static member (+)(a: TaskVector, b: TaskVector) =
        TaskVector.Zip "+" (fun x y -> x + y) a b

    /// <summary>τ_a − τ_b.</summary>
    static member (-)(a: TaskVector, b: TaskVector) =
        TaskVector.Zip "-" (fun x y -> x - y) a b

    /// <summary>s · τ.</summary>
    static member (*)(s: float, a: TaskVector) =
        use factor = s.ToScalar()
        a.Map(fun t -> t.mul factor)

    /// <summary>τ · s.</summary>
    static member (*)(a: TaskVector, s: float) =
        use factor = s.ToScalar()
        a.Map(fun t -> t.mul factor)

    /// <summary>−τ.</summary>
    static member (~-)(a: TaskVector) = a.Map(fun t -> t.neg ())

    /// <summary>Disposes every module's ΔW.</summary>
    member _.Dispose() =
        for t in table.Values do
            t.Dispose()

    interface IDisposable with
        member this.Dispose() = this.Dispose()

    override _.ToString() =
        let total = table.Values |> Seq.sumBy (fun t -> t.numel ())
        $"TaskVector({paths.Length} modules, {total} entries)"

/// Runs a computation in its own TorchSharp dispose scope, so that its temporaries (views, masks, casts) are freed when
/// it returns; only the result's tensors move to the caller's scope.
module internal Scoped =

    /// A tensor result.
    let tensor (f: unit -> torch.Tensor) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        (f ()).MoveToOuterDisposeScope()

    /// A task-vector result.
    let vector (f: unit -> TaskVector) : TaskVector =
        use scope = torch.NewDisposeScope()
        let v = f ()

        for t in v.Modules.Values do
            t.MoveToOuterDisposeScope() |> ignore

        v

    /// Task-vector results.
    let vectors (f: unit -> TaskVector[]) : TaskVector[] =
        use scope = torch.NewDisposeScope()
        let vs = f ()

        for v in vs do
            for t in v.Modules.Values do
                t.MoveToOuterDisposeScope() |> ignore

        vs

    /// A LoRA-set result.
    let lora (f: unit -> LoraSet) : LoraSet =
        use scope = torch.NewDisposeScope()
        let set = f ()

        for t in set.Tensors() do
            t.MoveToOuterDisposeScope() |> ignore

        set

    /// A result without tensors.
    let value (f: unit -> 'T) : 'T =
        use scope = torch.NewDisposeScope()
        f ()

/// Building task vectors from adapters and arrays, flattening them, and turning them back into LoRA sets.
module TaskVector =

    let private byOrdinal (a: string) (b: string) = String.CompareOrdinal(a, b)

    /// The task vector of a LoRA set: ΔW = scale · B · A of every module (or its dense ΔW), formed in float32 on the
    /// CPU without gradients. The set is neither changed nor disposed.
    [<CompiledName("OfLora")>]
    let ofLora (set: LoraSet) : TaskVector =
        Scoped.vector
        <| fun () ->
            if set.IsBatched then
                raise (
                    LlgbmException
                        $"Task vector: the LoRA set holds {set.Count} per-example adapters; take one adapter at a time."
                )

            use _ = torch.no_grad ()

            new TaskVector(
                [
                    for KeyValue(path, m) in set.Modules ->
                        let delta =
                            match m.Delta with
                            | null ->
                                let a = (nonNull m.A).detach().``to``(torch.float32, torch.CPU)
                                let b = (nonNull m.B).detach().``to``(torch.float32, torch.CPU)
                                use scale = m.Scale.ToScalar()
                                b.matmul(a).mul scale
                            | d -> d.detach().``to``(torch.float32, torch.CPU).clone()

                        path, delta
                ]
            )

    /// The task vector of the PEFT adapter directory <c>dir</c> for a model of architecture <c>config</c>.
    [<CompiledName("Load")>]
    let load (config: LLGBM.Model.Qwen2Config) (dir: string) : TaskVector =
        let struct (_, set) = PeftAdapter.Load(dir, config)
        use set = set
        ofLora set

    /// A task vector from (path, shape, row-major values) triples.
    [<CompiledName("OfArrays")>]
    let ofArrays (modules: seq<string * int64[] * float32[]>) : TaskVector =
        Scoped.vector
        <| fun () ->
            new TaskVector(
                [
                    for (path, shape, values) in modules ->
                        let count = Array.fold (*) 1L shape

                        if count <> int64 values.Length then
                            raise (
                                LlgbmException
                                    $"Task vector: module {path} has shape [{Listing.joined (shape)}] ({count} entries) but {values.Length} values."
                            )

                        path, torch.tensor(values).reshape(shape)
                ]
            )

    /// A task vector of one module named "vector" holding the 1-D vector `values` (for examples and tests).
    [<CompiledName("OfVector")>]
    let ofVector (values: float32[]) : TaskVector =
        ofArrays [ "vector", [| int64 values.Length |], values ]

    /// The flattened vector: every module's entries, row-major, modules in ordinal path order; a 1-D float32 tensor.
    [<CompiledName("Flatten")>]
    let flatten (tau: TaskVector) : torch.Tensor =
        Scoped.tensor
        <| fun () ->
            use _ = torch.no_grad ()

            if tau.Paths.Length = 0 then
                torch.zeros ([| 0L |], dtype = torch.float32)
            else
                torch.cat ([| for p in tau.Paths -> tau[p].reshape(-1L) |], 0L)

    /// The flattened vector as an array (see `flatten`).
    [<CompiledName("ToArray")>]
    let toArray (tau: TaskVector) : float32[] =
        Scoped.value
        <| fun () ->
            use flat = flatten tau
            flat.data<float32>().ToArray()

    /// The vector with the modules and shapes of `template` whose flattened entries are `flat` (the inverse of
    /// `flatten`); fresh tensors.
    [<CompiledName("UnflattenLike")>]
    let unflattenLike (template: TaskVector) (flat: torch.Tensor) : TaskVector =
        Scoped.vector
        <| fun () ->
            if flat.numel () <> template.Numel then
                raise (
                    LlgbmException
                        $"Task vector: {flat.numel ()} entries cannot fill a vector of {template.Numel} entries."
                )

            use _ = torch.no_grad ()
            let mutable offset = 0L

            new TaskVector(
                [
                    for p in template.Paths ->
                        let shape = template[p].shape
                        let n = template[p].numel()
                        let piece = flat.reshape(-1L).narrow(0L, offset, n).reshape(shape).clone()
                        offset <- offset + n
                        p, piece
                ]
            )

    /// The vectors over the union of their modules: a module a vector lacks becomes zeros of the shape the others
    /// give it. Every module must have one shape in all vectors that hold it.
    [<CompiledName("Align")>]
    let align (vectors: seq<TaskVector>) : TaskVector[] =
        Scoped.vectors
        <| fun () ->
            let vectors = Array.ofSeq vectors
            let shapes = Dictionary<string, int64[] * int>(StringComparer.Ordinal)

            vectors
            |> Array.iteri (fun i v ->
                for p in v.Paths do
                    match shapes.TryGetValue p with
                    | true, (shape, j) when shape <> v[p].shape ->
                        raise (
                            LlgbmException
                                $"Task vectors: module {p} is [{Listing.joined (shape)}] in vector {j} but [{Listing.joined (v[p].shape)}] in vector {i}."
                        )
                    | true, _ -> ()
                    | _ -> shapes[p] <- (v[p].shape, i))

            let union = shapes.Keys |> Seq.sortWith byOrdinal |> Array.ofSeq

            vectors
            |> Array.map (fun v ->
                if v.Paths.Length = union.Length then
                    v.Map(fun t -> t.clone ())
                else
                    new TaskVector(
                        [
                            for p in union ->
                                if v.Contains p then
                                    p, v[p].clone()
                                else
                                    p, torch.zeros (fst shapes[p], dtype = torch.float32)
                        ]
                    ))

    /// The aligned vectors (see `align`) flattened and stacked as the rows of a [T, n] tensor, with a template of
    /// their common modules for `unflattenLike`. At least one vector is needed.
    [<CompiledName("Stack")>]
    let stack (vectors: seq<TaskVector>) : torch.Tensor * TaskVector =
        use scope = torch.NewDisposeScope()
        let aligned = align vectors

        if aligned.Length = 0 then
            raise (LlgbmException "Task vectors: at least one vector is needed.")

        for t in aligned[0].Modules.Values do
            t.MoveToOuterDisposeScope() |> ignore

        use _ = torch.no_grad ()
        let rows = aligned |> Array.map flatten
        let stacked = torch.stack (rows, 0L)

        for r in rows do
            r.Dispose()

        for v in aligned.[1..] do
            v.Dispose()

        stacked.MoveToOuterDisposeScope(), aligned[0]

    /// The Euclidean (Frobenius) norm ‖τ‖ over every entry.
    [<CompiledName("Norm")>]
    let norm (tau: TaskVector) : float =
        Scoped.value
        <| fun () ->
            use _ = torch.no_grad ()

            tau.Paths
            |> Array.sumBy (fun p -> tau[p].to_type(torch.float64).square().sum().item<float>())
            |> sqrt

    /// The Frobenius norm of each module's ΔW, by path.
    [<CompiledName("ModuleNorms")>]
    let moduleNorms (tau: TaskVector) : Map<string, float> =
        Scoped.value
        <| fun () ->
            use _ = torch.no_grad ()

            tau.Paths
            |> Array.map (fun p -> p, tau[p].to_type(torch.float64).square().sum().item<float>() |> sqrt)
            |> Map.ofArray

    /// A LoRA set of dense modules (ΔW as it is), for applying a task vector functionally (evaluation) without a
    /// low-rank truncation. The set owns copies of the tensors, converted to `dtype` on `device`.
    [<CompiledName("ToDenseLoraOn")>]
    let toDenseLoraOn (device: torch.Device) (dtype: torch.ScalarType) (tau: TaskVector) : LoraSet =
        Scoped.lora
        <| fun () ->
            use _ = torch.no_grad ()

            let modules =
                Dictionary<string, LoraModule>(
                    [
                        for p in tau.Paths -> KeyValuePair(p, LoraModule.Dense(tau[p].``to``(dtype, device).clone()))
                    ],
                    StringComparer.Ordinal
                )

            new LoraSet(modules, true)

    /// `toDenseLoraOn` on the CPU in float32.
    [<CompiledName("ToDenseLora")>]
    let toDenseLora (tau: TaskVector) : LoraSet =
        toDenseLoraOn torch.CPU torch.float32 tau
