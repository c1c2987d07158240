/// Tasks built in memory, the independent (naive) computations the evaluation harness is checked against, and a
/// replaceable forward pass.
module LLGBM.Tests.EvaluationFixtures

open TorchSharp
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Tests.TestModels

/// A generation example.
let answered prompt answer =
    TaskExample(Prompt = prompt, Answer = answer)

/// A multiple-choice example; `answer` is the letter of the right choice.
let choice prompt (choices: string list) answer =
    TaskExample(Prompt = prompt, Answer = answer, Choices = ResizeArray choices)

/// A task whose test split holds `examples` (the train split is empty).
let task name kind extraction (examples: TaskExample list) =
    let spec =
        TaskSpec(
            Name = name,
            Domain = "test-domain",
            Kind = kind,
            Extraction = extraction,
            Instruction = "Answer the question."
        )

    TaskData(spec, [], ResizeArray examples)

/// The micro model as the harness sees it.
let evaluated (model: Qwen2ForCausalLM) =
    Qwen2EvaluatedModel(model, "micro") :> IEvaluatedModel

/// Greedy decoding of one prompt alone: a full forward pass without cache on the whole growing sequence, the argmax
/// of the last position's logits, ending before a stop token or after `maxNew` tokens.
let naiveGreedy (model: Qwen2ForCausalLM) (prompt: int seq) (maxNew: int) (stops: Set<int>) =
    use _ = torch.no_grad ()
    let tokens = ResizeArray prompt
    let start = tokens.Count
    let mutable stopped = false

    while not stopped && tokens.Count - start < maxNew do
        use scope = torch.NewDisposeScope()
        let ids = longs [ 1L; int64 tokens.Count ] [ for t in tokens -> int64 t ]
        let output = model.Forward(ids, ForwardOptions())
        let next = int (output.Logits[0, -1].argmax().item<int64>())

        if stops.Contains next then
            stopped <- true
        else
            tokens.Add next

    tokens.GetRange(start, tokens.Count - start).ToArray()

/// log p(continuation | context): one forward pass over context ++ continuation without padding, log-softmax in
/// float64, the log-probability of each continuation token at the position before it, summed.
let naiveLogLikelihood (model: Qwen2ForCausalLM) (context: int seq) (continuation: int seq) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let context = Array.ofSeq context
    let continuation = Array.ofSeq continuation
    let all = Array.append context continuation
    let ids = longs [ 1L; int64 all.Length ] [ for t in all -> int64 t ]

    let logProbs =
        model.Forward(ids, ForwardOptions()).Logits[0].to_type(torch.float64).log_softmax(-1)

    continuation
    |> Array.mapi (fun j token -> logProbs[int64 (context.Length + j - 1), int64 token].item<float>())
    |> Array.sum

/// An evaluated model whose forward pass is the micro model's plus `boost` on the logits of token `favoured`; it
/// records, at every call, whether gradients were on and whether the model was training.
type Boosted(model: Qwen2ForCausalLM, favoured: int, boost: float, adapter: string) =
    let calls = ResizeArray<bool * bool>()

    /// (gradients enabled, model training) at each forward call.
    member _.Calls = calls

    interface IEvaluatedModel with
        member _.Name = "micro"
        member _.Adapter = adapter
        member _.Config = model.Config
        member _.Device = model.Device

        member _.Forward(ids, options) =
            calls.Add((torch.is_grad_enabled (), model.training))
            let output = model.Forward(ids, options)

            if boost = 0.0 then
                output
            else
                let logits = output.Logits
                use bump = torch.zeros_like logits

                bump[torch.TensorIndex.Ellipsis, torch.TensorIndex.Single(int64 favoured)].fill_(boost.ToScalar())
                |> ignore

                let boosted = logits + bump
                logits.Dispose()

                new Qwen2Output(
                    HiddenLast = output.HiddenLast,
                    Logits = boosted,
                    LastTokenIndex = output.LastTokenIndex
                )

        member _.EvaluationMode() =
            (Qwen2EvaluatedModel(model, "micro") :> IEvaluatedModel).EvaluationMode()
