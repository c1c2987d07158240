module LLGBM.Tests.ChatTemplateTests

open Expecto
open LLGBM.Text

[<Tests>]
let tests =
    testList "ChatTemplate" [
        test "Message writes <|im_start|>role, newline, content, <|im_end|>, newline" {
            Expect.equal (ChatTemplate.Message("user", "Hi")) "<|im_start|>user\nHi<|im_end|>\n" "one message"
        }
        test "Render without a system message" {
            let text =
                ChatTemplate.Render([ ChatMessage.User "What is 2+2?"; ChatMessage.Assistant "4" ])

            Expect.equal text "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n" "ChatML"
        }
        test "Render with a system message and the generation prompt" {
            let text =
                ChatTemplate.Render(
                    [ ChatMessage.System "Be brief."; ChatMessage.User "Name a colour." ],
                    addGenerationPrompt = true
                )

            Expect.equal
                text
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
                "ChatML"
        }
        test "Render with Qwen2.5-Instruct's default system text when none is given" {
            let text =
                ChatTemplate.Render(
                    [ ChatMessage.User "Hello" ],
                    addGenerationPrompt = true,
                    defaultSystem = ChatTemplate.Qwen25DefaultSystem
                )

            Expect.equal
                text
                ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                 + "Hello<|im_end|>\n<|im_start|>assistant\n")
                "default system first"
        }
        test "the default system text does not replace a given system message" {
            let text =
                ChatTemplate.Render(
                    [ ChatMessage.System "Custom."; ChatMessage.User "Hello" ],
                    defaultSystem = ChatTemplate.Qwen25DefaultSystem
                )

            Expect.equal text "<|im_start|>system\nCustom.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n" "kept"
        }
        test "the generation prompt alone" {
            Expect.equal (ChatTemplate.Render([], addGenerationPrompt = true)) "<|im_start|>assistant\n" "prompt"
            Expect.equal ChatTemplate.GenerationPrompt "<|im_start|>assistant\n" "constant"
        }
    ]
