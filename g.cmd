set pagination off
break malloc
commands
bt 6
continue
end
continue
