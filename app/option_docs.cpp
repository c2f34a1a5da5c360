#include "option_docs.hpp"

#include <CLI/CLI.hpp>
#include <sstream>

namespace imgdl::app {
namespace {

/// How a shell completes an option's value, from the placeholder --help shows for it.
enum class ValueCompletion { None, Files, Directories };

ValueCompletion value_completion(const OptionDoc& option) {
  if (option.value_name == "FILE")
    return ValueCompletion::Files;
  if (option.value_name == "DIR")
    return ValueCompletion::Directories;
  return ValueCompletion::None;
}

bool is_option_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/// Text for a roff line: backslashes escaped, a leading '.' or '\'' kept from reading as a request, and
/// the '-' of an option name (a word starting with '-') written as a minus, \-, so that it renders and
/// copies as the ASCII character the shell needs (a plain '-' is a hyphen, U+2010 in UTF-8 output).
std::string roff_text(std::string_view text) {
  std::string out;
  bool in_option = false;
  char previous = ' ';
  for (const char c : text) {
    if (c == '-' && (in_option || !is_option_char(previous))) {
      in_option = true;
      out += "\\-";
    } else {
      in_option = in_option && is_option_char(c);
      if (c == '\\')
        out += "\\e";
      else
        out += c;
    }
    previous = c;
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\''))
    out.insert(0, "\\&");
  return out;
}

std::string join(const std::vector<std::string>& words, std::string_view separator) {
  std::string out;
  for (const auto& word : words) {
    if (!out.empty())
      out += separator;
    out += word;
  }
  return out;
}

/// An option's description inside a zsh single-quoted _arguments spec, between its [ and ].
std::string zsh_description(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\'')
      out += "'\\''";
    else if (c == '[' || c == ']' || c == '\\')
      out += std::string("\\") + c;
    else
      out += c;
  }
  return out;
}

}  // namespace

std::vector<OptionDoc> option_docs(CLI::App& app) {
  std::vector<OptionDoc> docs;
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty() || !opt->nonpositional())
      continue;  // hidden (the build's --generate-doc), or a positional (URL: the synopsis names it)
    OptionDoc doc;
    for (const auto& name : opt->get_snames())
      doc.names.push_back("-" + name);
    for (const auto& name : opt->get_lnames())
      doc.names.push_back("--" + name);
    doc.value_name = opt->get_option_text();
    doc.description = opt->get_description();
    // CLI11 2.1 lists an option's validators only by index, and says where they end by throwing.
    for (int i = 0;; ++i) {
      const CLI::Validator* validator = nullptr;
      try {
        validator = opt->get_validator(i);
      } catch (const CLI::OptionNotFound&) {
        break;
      }
      const std::string& name = validator->get_name();
      if (!name.starts_with(choices_validator_prefix))
        continue;
      std::istringstream values(name.substr(choices_validator_prefix.size()));
      for (std::string value; values >> value;)
        doc.choices.push_back(value);
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::string render_man_options(const std::vector<OptionDoc>& options) {
  std::string out;
  for (const auto& option : options) {
    out += ".TP\n";
    std::string tag;
    for (const auto& name : option.names)
      tag += (tag.empty() ? "" : ", ") + std::string("\\fB") + roff_text(name) + "\\fR";
    if (!option.value_name.empty())
      tag += " \\fI" + roff_text(option.value_name) + "\\fR";
    out += tag + "\n" + roff_text(option.description) + "\n";
  }
  return out;
}

namespace {

/// The arms of bash's `case "$prev" in` that complete the value after one of `options`: files after a
/// FILE option, directories after a DIR one, the fixed values, nothing after a number or text.
std::string bash_value_cases(const std::vector<OptionDoc>& options, std::string_view indent) {
  std::vector<std::string> file_options, directory_options, other_value_options;
  std::string choice_cases;
  const std::string arm_body(std::string(indent) + "  ");
  for (const auto& option : options) {
    if (option.value_name.empty())
      continue;
    if (!option.choices.empty()) {
      choice_cases += std::string(indent) + join(option.names, " | ") + ")\n" + arm_body +
                      "mapfile -t COMPREPLY < <(compgen -W \"" + join(option.choices, " ") +
                      "\" -- \"$cur\")\n" + arm_body + "return 0\n" + arm_body + ";;\n";
      continue;
    }
    switch (value_completion(option)) {
      case ValueCompletion::Files:
        file_options.insert(file_options.end(), option.names.begin(), option.names.end());
        break;
      case ValueCompletion::Directories:
        directory_options.insert(directory_options.end(), option.names.begin(), option.names.end());
        break;
      case ValueCompletion::None:
        other_value_options.insert(other_value_options.end(), option.names.begin(), option.names.end());
        break;
    }
  }
  std::string out;
  if (!file_options.empty())
    out += std::string(indent) + join(file_options, " | ") + ")\n" + arm_body +
           "compopt -o filenames 2>/dev/null\n" + arm_body +
           "mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n" + arm_body + "return 0\n" + arm_body + ";;\n";
  if (!directory_options.empty())
    out += std::string(indent) + join(directory_options, " | ") + ")\n" + arm_body +
           "compopt -o filenames 2>/dev/null\n" + arm_body +
           "mapfile -t COMPREPLY < <(compgen -d -- \"$cur\")\n" + arm_body + "return 0\n" + arm_body + ";;\n";
  out += choice_cases;
  if (!other_value_options.empty())
    out += std::string(indent) + join(other_value_options, " | ") + ")\n" + arm_body +
           "return 0 # a number or text: nothing to offer\n" + arm_body + ";;\n";
  return out;
}

std::vector<std::string> all_names(const std::vector<OptionDoc>& options) {
  std::vector<std::string> names;
  for (const auto& option : options)
    names.insert(names.end(), option.names.begin(), option.names.end());
  return names;
}

/// _arguments specs, one a line ("  'spec' \\\n"), for `options`.
std::string zsh_option_specs(const std::vector<OptionDoc>& options) {
  std::ostringstream out;
  for (const auto& option : options) {
    // Each name once; a value may follow a long name after '=' or as the next word.
    std::vector<std::string> spellings;
    for (const auto& name : option.names)
      spellings.push_back(name + (!option.value_name.empty() && name.starts_with("--") ? "=" : ""));
    out << "  ";
    if (option.names.size() > 1)
      out << "'(" << join(option.names, " ") << ")'{" << join(spellings, ",") << "}'";
    else
      out << "'" << spellings.front();
    out << "[" << zsh_description(option.description) << "]";
    if (!option.value_name.empty()) {
      out << ":" << option.value_name << ":";
      if (!option.choices.empty())
        out << "(" << join(option.choices, " ") << ")";
      else if (value_completion(option) == ValueCompletion::Files)
        out << "_files";
      else if (value_completion(option) == ValueCompletion::Directories)
        out << "_files -/";
      else
        out << " ";  // a number or text: the placeholder is shown, nothing offered
    }
    out << "' \\\n";
  }
  return out.str();
}

}  // namespace

std::string render_bash_completion(const std::vector<OptionDoc>& options,
                                   const std::vector<SubcommandDoc>& subcommands) {
  std::vector<std::string> subcommand_names;
  std::ostringstream out;
  out << "# bash completion for imgdl(1): generated from imgdl's option table (imgdl --generate-doc bash),\n"
         "# so it offers exactly the options --help lists. Plain bash; bash-completion loads it on demand.\n"
         "_imgdl() {\n"
         "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\"\n"
         "  ((COMP_CWORD > 0)) && prev=\"${COMP_WORDS[COMP_CWORD - 1]}\"\n"
         "  # --option=value reaches here split at '=' (COMP_WORDBREAKS): \"--option\" \"=\" \"value\".\n"
         "  if [[ $cur == \"=\" ]]; then\n"
         "    cur=\"\"\n"
         "  elif [[ $prev == \"=\" ]] && ((COMP_CWORD > 1)); then\n"
         "    prev=\"${COMP_WORDS[COMP_CWORD - 2]}\"\n"
         "  fi\n"
         "  COMPREPLY=()\n";
  for (const auto& sub : subcommands) {
    subcommand_names.push_back(sub.name);
    out << "  # `imgdl " << sub.name << " ...`: its own options, and files (" << sub.operand_name << ").\n"
        << "  if ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[1]} == " << sub.name << " ]]; then\n"
        << "    case \"$prev\" in\n"
        << bash_value_cases(sub.options, "      ") << "    esac\n"
        << "    if [[ $cur == -* ]]; then\n"
        << "      mapfile -t COMPREPLY < <(compgen -W \"" << join(all_names(sub.options), " ")
        << "\" -- \"$cur\")\n"
           "    else\n"
           "      compopt -o filenames 2>/dev/null\n"
           "      mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
           "    fi\n"
           "    return 0\n"
           "  fi\n";
  }
  out << "  case \"$prev\" in\n" << bash_value_cases(options, "    ") << "  esac\n";
  out << "  if [[ $cur == -* ]]; then\n"
         "    mapfile -t COMPREPLY < <(compgen -W \""
      << join(all_names(options), " ") << "\" -- \"$cur\")\n";
  if (!subcommand_names.empty())
    out << "  elif ((COMP_CWORD == 1)); then # a subcommand is only ever the first word\n"
           "    mapfile -t COMPREPLY < <(compgen -W \""
        << join(subcommand_names, " ") << "\" -- \"$cur\")\n";
  out << "  fi\n"
         "  return 0\n"
         "}\n"
         "complete -F _imgdl imgdl\n";
  return out.str();
}

std::string render_zsh_completion(const std::vector<OptionDoc>& options,
                                  const std::vector<SubcommandDoc>& subcommands) {
  std::ostringstream out;
  out << "#compdef imgdl\n"
         "# zsh completion for imgdl(1): generated from imgdl's option table (imgdl --generate-doc zsh),\n"
         "# so it offers exactly the options --help lists.\n";
  std::vector<std::string> menu;
  for (const auto& sub : subcommands) {
    menu.push_back(sub.name + "\\:\"" + sub.description + "\"");
    out << "# `imgdl " << sub.name << " ...`: its own options, and files (" << sub.operand_name << ").\n"
        << "if [[ ${words[2]} == " << sub.name << " ]] && ((CURRENT > 2)); then\n"
        << "  shift words\n"
           "  ((CURRENT--))\n"
           "  _arguments -s -S \\\n"
        << zsh_option_specs(sub.options) << "  '*:" << sub.operand_name << ":_files'\n"
        << "  return\n"
           "fi\n";
  }
  if (!menu.empty())
    out << "# The first word may be a subcommand, or a URL.\n"
           "if ((CURRENT == 2)) && [[ $PREFIX != -* ]]; then\n"
           "  _alternative 'subcommands:subcommand:(("
        << join(menu, " ")
        << "))' 'urls:URL:_urls'\n"
           "  return\n"
           "fi\n";
  out << "_arguments -s -S \\\n" << zsh_option_specs(options) << "  '*:URL:_urls'\n";
  return out.str();
}

}  // namespace imgdl::app
