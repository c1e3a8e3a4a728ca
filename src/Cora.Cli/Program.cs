return Cora.Cli.CoraCli.Run(args, Console.Out, Console.Error);
