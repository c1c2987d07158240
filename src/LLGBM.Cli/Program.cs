return LLGBM.Cli.LlgbmCommand.Run(args);
