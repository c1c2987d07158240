module LLGBM.Tests.GenerationEvaluatorTests

open Expecto
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures

let private tok = TestTokenizer.tokenizer
let private newline = TestTokenizer.id '\n'
let private eot = TestTokenizer.endOfText

/// Prompts of unequal length (one of them empty: it is read as the end-of-text token).
let private prompts = [ "12+30="; "a"; "what is b?"; ""; "x y z w"; "7-2="; "IJ:"; "say 5" ]

/// The prompt text of a format, its ids (the end-of-text token for an empty prompt), as the harness is told to build them.
let private promptIds (spec: TaskSpec) (format: PromptFormat) prompt =
    let text = format.Prompt(spec, answered prompt "")
    if text = "" then [ eot ] else List.ofSeq (tok.Encode text)

/// The naive answer of every prompt: cache-free greedy decoding, the decoded text without its first space.
let private naiveCompletions model spec format maxNew stops =
    prompts
    |> List.map (fun p ->
        let text = tok.Decode(naiveGreedy model (promptIds spec format p) maxNew stops)
        if text.StartsWith " " then text.Substring 1 else text)

/// Every other example gets its naive answer as the reference (so some are right), the others a wrong one.
let private withReferences name extraction (answers: string list) =
    let examples =
        List.zip prompts answers
        |> List.mapi (fun i (p, a) -> answered p (if i % 2 = 0 && a.Trim() <> "" then a.Trim() else "zz#zz"))

    task name TaskKind.Generation extraction examples

[<Tests>]
let tests =
    testList "GenerationEvaluator" [
        test "An id the tokenizer cannot decode becomes U+FFFD instead of failing the evaluation" {
            let tokenizer = LLGBM.Text.ByteLevelTokenizer()
            // 'a', 'b', an id past the special tokens, 'c'; and the all-valid case decodes as usual.
            let text = GenerationEvaluator.DecodeLenient(tokenizer, [| 97; 98; 263; 99 |])
            Expect.equal text "ab\uFFFDc" "lenient decode"
            Expect.equal (GenerationEvaluator.DecodeLenient(tokenizer, [| 104; 105 |])) "hi" "valid ids"
        }

        test
            "Evaluate: completions and exact match equal a cache-free greedy loop per prompt (first lines, newline stop)" {
            use model = micro 41L

            for format in [ PromptFormat.Bare; PromptFormat.WithInstruction ] do
                let probe = task "t" TaskKind.Generation AnswerExtraction.FirstLine []
                let naive = naiveCompletions model probe.Spec format 6 (set [ eot; newline ])
                let data = withReferences "lines" AnswerExtraction.FirstLine naive

                let expectedCorrect =
                    List.zip (List.ofSeq data.Test) naive
                    |> List.filter (fun (e, c) -> c.Trim() <> "" && c.Trim() = e.Answer)
                    |> List.length

                let result =
                    GenerationEvaluator.Evaluate(
                        evaluated model,
                        tok,
                        data,
                        EvaluationOptions(Format = format, BatchSize = 3, MaxNewTokens = 6, KeepPredictions = true)
                    )

                let completions = [ for p in result.Predictions -> p.Completion ]
                Expect.equal completions naive $"completions ({PromptFormatNames.Name format})"
                Expect.isGreaterThan expectedCorrect 0 "the constructed references make some answers right"
                Expect.equal result.Correct expectedCorrect "correct count"
                Expect.equal result.N prompts.Length "n"

                Expect.floatClose
                    Accuracy.veryHigh
                    result.Accuracy
                    (float expectedCorrect / float prompts.Length)
                    "accuracy"

                Expect.equal result.Format (PromptFormatNames.Name format) "format"
                Expect.equal result.Metric "exact_match" "metric"
        }

        test "Evaluate: final-number answers decode past newlines and are matched by value" {
            let probe = task "t" TaskKind.Generation AnswerExtraction.FinalNumber []

            // a model some of whose completions run past a newline
            let (model, naive) =
                seq { 42L .. 60L }
                |> Seq.tryPick (fun seed ->
                    let model = micro seed
                    let naive = naiveCompletions model probe.Spec PromptFormat.Bare 10 (set [ eot ])

                    if naive |> List.exists (fun c -> c.Contains "\n") then
                        Some(model, naive)
                    else
                        model.Dispose()
                        None)
                |> fun found -> Expect.wantSome found "a seed whose greedy completions contain a newline"

            use model = model

            // the reference of every other example: the naive completion's last digits written as "#### n.0"; the
            // others get a number no completion of 10 tokens ends with
            let lastNumber (text: string) =
                System.Text.RegularExpressions.Regex.Matches(text, @"\d+")
                |> Seq.tryLast
                |> Option.map (fun m -> m.Value.TrimStart '0' |> fun s -> if s = "" then "0" else s)

            let references =
                naive
                |> List.mapi (fun i c ->
                    match lastNumber c with
                    | Some n when i % 2 = 0 -> $"#### {n}.0"
                    | _ -> "#### 123456789")

            let data =
                task "numbers" TaskKind.Generation AnswerExtraction.FinalNumber (List.map2 answered prompts references)

            // extraction itself is tested in AnswerExtractorTests; here it is applied to the naive completions
            let expectedCorrect =
                List.zip (List.ofSeq data.Test) naive
                |> List.filter (fun (e, c) -> AnswerExtractor.Matches(data.Spec, e, c))
                |> List.length

            let result =
                GenerationEvaluator.Evaluate(
                    evaluated model,
                    tok,
                    data,
                    EvaluationOptions(BatchSize = 4, MaxNewTokens = 10, KeepPredictions = true)
                )

            Expect.equal [ for p in result.Predictions -> p.Completion ] naive "completions"
            Expect.isGreaterThan expectedCorrect 0 "some answers are right"
            Expect.equal result.Correct expectedCorrect "correct count"
        }

        test "MaxNewTokens: the longest reference continuation plus the margin, unless given" {
            let examples = [ answered "p" "12"; answered "q" "abcde"; answered "r" "" ]
            // " 12" is 3 tokens, " abcde" 6, " " 1
            Expect.equal
                (GenerationEvaluator.MaxNewTokens(tok, examples, EvaluationOptions()))
                (6 + 8)
                "default margin 8"

            Expect.equal
                (GenerationEvaluator.MaxNewTokens(tok, examples, EvaluationOptions(MaxNewTokensMargin = 0)))
                6
                "no margin"

            Expect.equal
                (GenerationEvaluator.MaxNewTokens(tok, examples, EvaluationOptions(MaxNewTokens = 3)))
                3
                "explicit"

            Expect.equal (GenerationEvaluator.MaxNewTokens(tok, [], EvaluationOptions())) 8 "no examples"
        }

        test "StopTokens: end of text always; newline for first-line answers or when asked; extra tokens" {
            let spec extraction =
                (task "t" TaskKind.Generation extraction []).Spec

            let stops extraction options =
                GenerationEvaluator.StopTokens(tok, spec extraction, options) |> Set.ofSeq

            Expect.equal (stops AnswerExtraction.FirstLine (EvaluationOptions())) (set [ eot; newline ]) "first line"
            Expect.equal (stops AnswerExtraction.FinalNumber (EvaluationOptions())) (set [ eot ]) "final number"

            Expect.equal
                (stops AnswerExtraction.YesNo (EvaluationOptions(StopAtNewline = true)))
                (set [ eot; newline ])
                "asked for"

            Expect.equal
                (stops AnswerExtraction.FirstLine (EvaluationOptions(StopAtNewline = false, ExtraStopTokens = [| 5 |])))
                (set [ eot; 5 ])
                "newline off, extra token"
        }

        test "Evaluate: the limit takes the first N examples; progress ends at the total" {
            use model = micro 43L

            let data =
                task "t" TaskKind.Generation AnswerExtraction.FirstLine (prompts |> List.map (fun p -> answered p "1"))

            let reports = ResizeArray()

            let result =
                GenerationEvaluator.Evaluate(
                    evaluated model,
                    tok,
                    data,
                    EvaluationOptions(
                        Limit = 5,
                        BatchSize = 2,
                        MaxNewTokens = 2,
                        KeepPredictions = true,
                        Progress = fun finished total -> reports.Add((finished, total))
                    )
                )

            Expect.equal result.N 5 "n"
            Expect.equal [ for p in result.Predictions -> p.Index ] [ 0..4 ] "the first five, in order"
            Expect.equal (List.ofSeq reports) [ (2, 5); (4, 5); (5, 5) ] "one report per batch"
        }

        test "Evaluate: a multiple-choice task or a non-positive batch size is a clear error" {
            use model = micro 44L

            let mc =
                task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [ choice "q" [ "a"; "b" ] "A" ]

            Expect.throwsT<LLGBM.LlgbmException>
                (fun () -> GenerationEvaluator.Evaluate(evaluated model, tok, mc) |> ignore)
                "kind"

            let gen =
                task "g" TaskKind.Generation AnswerExtraction.FirstLine [ answered "q" "a" ]

            Expect.throwsT<LLGBM.LlgbmException>
                (fun () ->
                    GenerationEvaluator.Evaluate(evaluated model, tok, gen, EvaluationOptions(BatchSize = 0))
                    |> ignore)
                "batch size"
        }
    ]
